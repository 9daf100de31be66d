"""A file plugin for the Ray tests: mel bands whose worker dies once during extraction.

While the file named by ``$BENCH_TEST_DIE_FILE`` exists, the first ``encode`` call made by an
extraction shard (Ray) or by a ``--jobs`` pool worker removes it and kills its process
(``os._exit``), as a lost worker would.
"""

import os
import traceback
from pathlib import Path

from benchmark.plugins import register_tokenizer
from benchmark.tokenizers.dummy import MelBandTokenizer


class DyingMelTokenizer(MelBandTokenizer):
    """Mel bands that kill their worker once, in an extraction shard."""

    def encode(self, wav, lengths):
        switch = os.environ.get("BENCH_TEST_DIE_FILE")
        in_shard = any(frame.name in ("extract_shard", "_run_in_worker")
                       for frame in traceback.extract_stack())  # fmt: skip
        if switch and in_shard and Path(switch).exists():
            try:  # one process claims the switch (two workers may see it at once)
                os.rename(switch, switch + ".died")
            except FileNotFoundError:
                return super().encode(wav, lengths)
            Path(switch + ".died").write_text(str(os.getpid()))
            os._exit(1)
        return super().encode(wav, lengths)


register_tokenizer("dying-mel", DyingMelTokenizer, params={"name": "dying-mel"})
