"""Vocoders: the scalable unit HiFi-GAN (model, data, training, study, evaluation).

- :mod:`~benchmark.vocoders.model`: the generator (layer-dropout aware) and its loading;
- :mod:`~benchmark.vocoders.speechbrain_vocoder`: speechbrain's released unit HiFi-GAN;
- :mod:`~benchmark.vocoders.data`: token/audio pairs, segments and layer dropout;
- :mod:`~benchmark.vocoders.training`: the training loop with resume;
- :mod:`~benchmark.vocoders.presets`: per-preset budgets and architectures;
- :mod:`~benchmark.vocoders.evaluation`: mel distance and DNSMOS of decoded audio;
- :mod:`~benchmark.vocoders.study`: single-layer vs scalable vocoders.
"""
