"""The project's exception family.

Every error a user can cause (bad name, bad card, missing data, broken plugin) is raised as a
:class:`BenchmarkError` whose message is one line naming the thing and the fix. The CLI prints
that line without a traceback unless ``--debug`` is given.
"""

from __future__ import annotations


class BenchmarkError(Exception):
    """Base class of every error the harness reports to a user as one line."""


class UsageError(BenchmarkError):
    """A bad command-line value (unknown name, bad preset, bad option): exit code 2."""


class UnknownNameError(UsageError):
    """A tokenizer, task or metric name that no registry knows."""


class DuplicateNameError(BenchmarkError):
    """Two sources register the same name."""


class CardError(BenchmarkError):
    """A tokenizer or task card that is malformed: the message names the file and the key."""


class PluginError(BenchmarkError):
    """A plugin that cannot be loaded or does not implement the contract."""


class DataError(BenchmarkError):
    """A missing dataset folder, an unreadable audio file, a corrupt manifest."""


class WeightsUnavailableError(BenchmarkError):
    """Model weights that cannot be had (offline, not cached, no local directory)."""


class ContractError(BenchmarkError):
    """A tokenizer, task or metric returned something that breaks the interface."""


class MissingDependencyError(BenchmarkError):
    """A system tool or optional package that is not installed (names the install command)."""


class JudgeUnavailableError(WeightsUnavailableError):
    """A metric's judge (pinned model, bundled model files, harness-trained judge) is missing.

    The metric is then recorded as unavailable with this message as the reason, never as a
    number.
    """


class DecoderUnavailableError(WeightsUnavailableError):
    """Tokens that cannot be turned back into audio: a continuous reference, or a tokenizer
    whose frame rate the preset's vocoder cannot upsample. Decided by the key's inputs alone,
    so its ``unavailable`` record stays up to date (a rerun does not retry it)."""
