"""Manifests, audio I/O and one recipe module per corpus."""
