"""Judges behind the audio metrics: pinned hub models and the harness-trained mini judges."""
