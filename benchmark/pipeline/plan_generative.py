"""Planning the generative path: vocoder training, generation, mini judges and scoring.

A cell of a :class:`~benchmark.api.GenerativeTask` becomes, beside the usual extract steps:

- ``vocoder``: when the tokenizer cannot decode, the scalable vocoder trained on its tokens
  of the preset's vocoder corpus (one per tokenizer, shared by every generative task);
- ``generate``: the task's model trained and run, its tokens decoded into audio files under
  ``<workdir>/generated/<key>/`` (with the rows the task asks to decode beside them);
- ``judge``: in ``mini``, the harness-trained recogniser and speaker model (one each, shared
  by every cell);
- ``reference-scores``: the task's reference rows (:meth:`GenerativeTask.reference_rows
  <benchmark.api.GenerativeTask.reference_rows>`: the recordings, the noisy input), judged
  into the score cache; it needs the corpus and the judges but no tokenizer, so one step
  serves every tokenizer and runs beside the first one's pretraining and extraction;
- ``job``: the metrics of the card scored on the generated files (and on every baseline
  row), the record written. Its key holds the generate step's key, the metrics' code and
  arguments and the judges' keys, so changing a judge rescores without regenerating.

A cell that cannot be decoded (a continuous reference; a tokenizer whose frame rate the
preset's vocoder cannot upsample) is planned as a job that records ``unavailable`` with the
reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.api import DataRef, GenerativeTask
from benchmark.pipeline.graph import Step
from benchmark.pipeline.keys import code_fingerprint, key_of, library_versions

#: Metrics whose judge, in ``mini``, is a harness-trained model: metric -> judge kind.
MINI_JUDGED: dict[str, str] = {
    "dwer": "asr", "dcer": "asr", "text_wer": "asr", "text_cer": "asr",
    "speaker_similarity": "speaker",
}  # fmt: skip
#: The module that trains each mini judge kind.
JUDGE_MODULES: dict[str, str] = {
    "asr": "benchmark.metrics.judges.mini_asr",
    "speaker": "benchmark.metrics.judges.mini_speaker",
}
#: Seed of the mini judges (one judge per corpus, shared by every job whatever its seed).
JUDGE_SEED = 0


def is_generative(task: Any) -> bool:
    """Whether a task returns tokens for the harness to decode."""
    return isinstance(task, GenerativeTask)


class GenerativePlanning:
    """Mixin of :class:`~benchmark.pipeline.plan.Planner`: the generative steps."""

    # --- the decoder --------------------------------------------------------------------

    def _decoder(self, tok: Any) -> tuple[dict[str, Any] | None, str | None]:
        """``(decoder spec, unavailable reason)`` of a tokenizer for generative cells.

        The spec is ``{"own": True}`` for a tokenizer that decodes itself and ``{"vocoder":
        step id}`` for one whose vocoder the graph trains. None with a reason when it cannot
        decode; ``(None, None)`` while the data a vocoder needs is not prepared.
        """
        if tok.decoder is not None:
            return tok.decoder, None
        info = tok.info
        if info.is_continuous:
            return None, "a continuous reference has no tokens to decode"
        if info.can_decode:
            tok.decoder = {"own": True}
            return tok.decoder, None
        from benchmark.vocoders.presets import resolve_preset

        preset = resolve_preset(self.config.preset)
        refusal = _vocoder_refusal(info, preset)
        if refusal is not None:
            return None, f"tokenizer {tok.name!r} cannot decode and {refusal}"
        data = self._vocoder_data(tok, preset)
        if data is None:
            return None, None
        layers = tuple(range(info.num_codebooks))
        step = self._vocoder_step(tok, preset, {}, *data, layers, True, 0)
        tok.decoder = {"vocoder": step.id}
        return tok.decoder, None

    def _vocoder_data(self, tok: Any, preset: Any) -> tuple[dict[str, Any], list[str]] | None:
        """``(caches, extract step ids)`` of the preset's vocoder corpus for ``tok``; None
        while the corpus is not prepared."""
        from benchmark.vocoders.data import vocoder_data_refs

        caches = {}
        inputs: list[str] = []
        for split, ref in vocoder_data_refs(preset.corpus).items():
            extracted = self._extract(tok, ref)
            if extracted is None:
                return None
            inputs.append(extracted[0])
            caches[split] = extracted[1]
        return caches, inputs

    def _vocoder_step(
        self, tok: Any, preset: Any, overrides: dict[str, Any], caches: dict[str, Any],
        inputs: list[str], layers: tuple[int, ...], layer_dropout: bool, seed: int,
    ) -> Step:  # fmt: skip
        """A ``vocoder`` step: the unit HiFi-GAN of ``preset`` (with ``overrides``: steps,
        corpus, ...) trained on ``layers`` of ``tok``'s tokens, with or without dropout."""
        import benchmark.vocoders.training as training

        components = {
            "tokenizer": tok.key,
            "kept_codebooks": tok.kept,
            "preset": preset.to_dict(),
            "layers": list(layers),
            "layer_dropout": layer_dropout,
            "manifests": {s: c["manifest_key"] for s, c in sorted(caches.items())},
            "code": code_fingerprint(training.__name__),
            "seed": seed,
            "libraries": library_versions(),
        }
        key = key_of(components)
        what = "scalable" if layer_dropout else f"codebooks {list(layers)}"
        step = Step(
            id=f"vocoder:{key[:16]}",
            kind="vocoder",
            label=f"train vocoder for {tok.name} ({preset.name}, {what}, {preset.steps} steps)",
            components=components,
            inputs=tuple(inputs),
            output=self.config.workdir / "vocoders" / key[:16],
            spec={
                **_vocoder_spec(tok, caches, preset, overrides, seed),
                "layers": list(layers),
                "layer_dropout": layer_dropout,
            },
        )
        return self._add(step)

    def plan_vocoder_study(
        self, tokenizer: str, overrides: dict[str, Any], seed: int
    ) -> str | None:
        """The single-layer vs scalable vocoder comparison of one tokenizer and seed: a
        ``vocoder`` step per codebook (trained on it alone), a scalable one (all codebooks,
        layer dropout) and the ``vocoder-eval`` step (a goal) that decodes the validation
        split with each of them, each codebook alone and all together.

        Args:
            tokenizer: name or card path (its parameters from this planner's config).
            overrides: vocoder preset fields to change (``steps``, ``corpus``,
                ``adversarial_steps``).
            seed: the vocoders' seed.

        Returns:
            The eval step's id; None while the corpus is not prepared (its ``prepare``
            step is then the goal).

        Raises:
            UsageError: the tokenizer cannot be built, or the preset's vocoder cannot
                decode its tokens (a continuous reference, another frame rate).
        """
        from benchmark.errors import UsageError
        from benchmark.vocoders.presets import resolve_preset
        from benchmark.vocoders.study import study_preset, study_specs

        entry = self.env.entry("tokenizer", tokenizer)
        entry.load()
        self._refs[entry.name] = tokenizer
        tok = self._tokenizer(entry)
        if tok.error is not None:
            raise UsageError(f"tokenizer {entry.name!r}: {tok.error}") from None
        preset = study_preset(resolve_preset(self.config.preset).replace(**overrides))
        data = None if tok.pending else self._vocoder_data(tok, preset)
        if data is None:
            for step in self.graph:
                step.goal = step.goal or step.kind == "prepare"
            return None
        info = tok.info
        refusal = _vocoder_refusal(info, preset)
        if refusal is not None:
            raise UsageError(f"tokenizer {entry.name!r}: {refusal}")
        caches, inputs = data
        overrides = {**overrides, "dnsmos_utterances": 0}
        vocoders = []
        for label, layers, dropout in study_specs(info.num_codebooks):
            step = self._vocoder_step(tok, preset, overrides, caches, inputs, layers, dropout,
                                      seed)  # fmt: skip
            vocoders.append({"label": label, "layers": list(layers), "layer_dropout": dropout,
                             "id": step.id, "key": step.key, "dir": str(step.output)})  # fmt: skip
        import benchmark.pipeline.generative_steps as generative_steps
        import benchmark.vocoders.study as study_code

        components = {
            "vocoders": [{"label": v["label"], "key": v["key"]} for v in vocoders],
            "valid": caches["valid"]["manifest_key"],
            "tokenizer": tok.key,
            # the table's code and the step function that runs it
            "code": [code_fingerprint(study_code.__name__),
                     code_fingerprint(generative_steps.__name__)],
            "libraries": library_versions(),
        }  # fmt: skip
        key = key_of(components)
        step = Step(
            id=f"vocoder-eval:{key[:16]}",
            kind="vocoder-eval",
            label=f"compare the vocoders of {tok.name} (seed {seed}, {len(vocoders)} vocoders)",
            components=components,
            inputs=tuple(dict.fromkeys([*inputs, *(v["id"] for v in vocoders)])),
            output=self.config.workdir / "vocoder-evals" / key[:16],
            spec={
                **_vocoder_spec(tok, caches, preset, overrides, seed),
                "tokenizer_name": tok.name,
                "vocoders": vocoders,
            },
            goal=True,
        )
        return self._add(step).id

    # --- judges -------------------------------------------------------------------------

    def _judges(self, metrics: tuple[str, ...]) -> dict[str, str] | None:
        """``{judge kind: step id}`` of the mini judges the metrics need (none in ``full``);
        None while the mini corpus is not prepared."""
        if self.config.preset != "mini":
            return {}
        kinds = sorted({MINI_JUDGED[m] for m in metrics if m in MINI_JUDGED})
        if not kinds:
            return {}
        ref = DataRef("mini", "asr", "train")
        manifest = self._manifest(ref)
        if manifest is None:
            return None
        from benchmark.metrics.judges.mini_common import mini_judge_manifests

        corpus_dir = Path(manifest.root).parent
        manifests = mini_judge_manifests(corpus_dir)
        out = {}
        for kind in kinds:
            train, valid = manifests[kind]
            components = {
                "kind": kind,
                "train": self._manifest_key(train),
                "valid": self._manifest_key(valid),
                "code": code_fingerprint(JUDGE_MODULES[kind]),
                "seed": JUDGE_SEED,
                "libraries": library_versions(),
            }
            key = key_of(components)
            step = Step(
                id=f"judge:{kind}:{key[:16]}",
                kind="judge",
                label=f"train the mini {kind} judge",
                components=components,
                inputs=self._prepare_ids(ref),
                output=self.config.workdir / "judges" / f"{kind}-{key[:16]}",
                spec={"kind": kind, "corpus_dir": str(corpus_dir), "seed": JUDGE_SEED},
            )
            out[kind] = self._add(step).id
        return out

    def _metric_specs(self, task: Any, judges: dict[str, str]) -> list[dict[str, Any]]:
        """One ``{name, args, judge, judge_key, code}`` per metric of a generative task.

        ``args`` are the constructor arguments (a mini judge's folder, or the card's judge
        weights); ``judge`` the id of the judge step whose output the folder is, and
        ``judge_key`` its key (the score cache's key covers it).
        """
        specs = []
        for name in task.metrics:
            entry = self.env.entry("metric", name)
            entry.load()
            args: dict[str, Any] = {}
            judge = None
            if name in task.judge_weights:
                args["weights"] = task.judge_weights[name]
            elif name in MINI_JUDGED and self.config.preset == "mini":
                judge = judges[MINI_JUDGED[name]]
                args["mini_judge"] = str(self.graph.steps[judge].output)
            # the planner's one code identity: a plugin metric is keyed by its file too
            from benchmark.pipeline.plan import identity

            judge_key = self.graph.steps[judge].key if judge else None
            specs.append({"name": name, "args": args, "judge": judge, "judge_key": judge_key,
                          "code": identity(entry, {})})  # fmt: skip
        return specs

    # --- the cell -----------------------------------------------------------------------

    def _reference_scores(
        self, task: Any, splits: dict[str, Any], task_key: dict[str, Any],
        task_spec: dict[str, Any], metrics: list[dict[str, Any]],
    ) -> str | None:  # fmt: skip
        """The ``reference-scores`` step of a generative task's reference rows, or None (no
        rows; corpus not prepared; rows the task cannot list: its job reports why).

        Its key holds the task (card, code), the manifests (with their audio bytes), the
        metrics as the job keys them and the judges' keys, never a tokenizer.
        """
        from benchmark.errors import BenchmarkError

        manifests, manifest_keys = {}, {}
        for name, ref in splits.items():
            manifest = self._manifest(ref)
            if manifest is None or not isinstance(ref, DataRef):
                return None
            manifests[name], manifest_keys[name] = manifest, self._manifest_key(manifest)
        try:
            rows = task.reference_rows(manifests)
        except (BenchmarkError, KeyError, ValueError):
            return None
        if not any(rows.values()):
            return None
        import benchmark.pipeline.generative_steps as generative_steps

        components = {
            "task": task_key,
            "manifests": dict(sorted(manifest_keys.items())),
            "metrics": _metric_components(metrics, self.graph.steps),
            "code": code_fingerprint(generative_steps.__name__),
            "libraries": library_versions(),
        }
        key = key_of(components)
        files = sum(len(row) for row in rows.values())
        inputs = [i for ref in splits.values() for i in self._prepare_ids(ref)]
        step = Step(
            id=f"reference-scores:{key[:16]}",
            kind="reference-scores",
            label=f"judge the reference rows of {task.info.name} ({', '.join(rows)}: {files} "
            "files)",
            components=components,
            inputs=tuple(dict.fromkeys([*inputs, *(m["judge"] for m in metrics if m["judge"])])),
            output=self.config.workdir / "reference-scores" / key[:16],
            spec={
                "task": task_spec,
                "splits": {n: r.__dict__ for n, r in splits.items()},
                "metrics": metrics,
            },
        )
        return self._add(step).id

    def _generative_steps(
        self, tok: Any, task: Any, job_components: dict[str, Any], job_spec: dict[str, Any],
        inputs: list[str], splits: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any], list[str], str | None]:  # fmt: skip
        """Plan the generate (and vocoder, judge) steps of one cell.

        Returns:
            ``(job components, job spec, job inputs, pending reason)`` of the scoring job;
            an unavailable decoder becomes the spec's ``build_error``.
        """
        decoder, reason = self._decoder(tok)
        if reason is not None:
            job_spec["build_error"] = {"type": "DecoderUnavailable", "message": reason,
                                       "unavailable": True}  # fmt: skip
            return job_components, job_spec, [], None  # nothing to run before recording it
        judges = self._judges(task.metrics)
        if decoder is None or judges is None:
            return job_components, job_spec, inputs, "needs corpus mini"
        import benchmark.pipeline.generative_steps as generative_steps

        gen_inputs = list(inputs)
        vocoder_key = None
        if "vocoder" in decoder:
            vocoder = self.graph.steps[decoder["vocoder"]]
            gen_inputs.append(vocoder.id)
            vocoder_key = vocoder.key
        task_key = dict(job_components["task"])
        card = dict(task_key["card"])
        card["params"] = {k: v for k, v in card["params"].items() if k not in task.SCORING_PARAMS}
        gen_components = {
            "job": {**job_components, "task": {**task_key, "card": card}},
            "decoder": {"vocoder": vocoder_key} if vocoder_key else {"own": tok.key},
            "code": code_fingerprint(generative_steps.__name__),
        }
        gen_key = key_of(gen_components)
        vocoder_dir = str(self.graph.steps[decoder["vocoder"]].output) if vocoder_key else None
        generate = Step(
            id=f"generate:{job_spec['tokenizer_name']}/{job_spec['task_name']}/{job_spec['seed']}",
            kind="generate",
            label=f"generate {job_spec['tokenizer_name']} / {job_spec['task_name']} / seed "
            f"{job_spec['seed']}",
            components=gen_components,
            inputs=tuple(dict.fromkeys(gen_inputs)),
            output=self.config.workdir / "generated" / gen_key[:16],
            spec={**job_spec, "vocoder_dir": vocoder_dir, "tokenizer_key": tok.key},
        )
        generate = self._add(generate)
        metrics = self._metric_specs(task, judges)
        score_components = {
            "schema": job_components["schema"],
            "preset": job_components["preset"],
            "generated": generate.key,
            "metrics": _metric_components(metrics, self.graph.steps),
            "code": code_fingerprint(generative_steps.__name__),
        }
        job_spec = {**job_spec, "generated_dir": str(generate.output), "metrics": metrics,
                    "generative": True}  # fmt: skip
        job_inputs = [generate.id, *(m["judge"] for m in metrics if m["judge"])]
        reference = self._reference_scores(
            task, splits, job_components["task"], job_spec["task"], metrics
        )
        if reference is not None:  # the job reads its scores; its key does not need them
            job_inputs.append(reference)
        return score_components, job_spec, list(dict.fromkeys(job_inputs)), None


def _vocoder_refusal(info: Any, preset: Any) -> str | None:
    """Why the preset's vocoder cannot learn a tokenizer's tokens (None when it can)."""
    if info.is_continuous:
        return "a continuous reference has no tokens to decode"
    hop = info.sample_rate / info.frame_rate
    if abs(hop - preset.hop_length) > 1e-6:
        return (f"the {preset.name} vocoder upsamples by {preset.hop_length} samples per "
                f"frame, not its {hop:g}")  # fmt: skip
    return None


def _vocoder_spec(
    tok: Any, caches: dict[str, Any], preset: Any, overrides: dict[str, Any], seed: int
) -> dict[str, Any]:
    """What a vocoder or vocoder-eval step needs to open the tokenizer, its cached tokens
    and the vocoder preset."""
    return {
        "tokenizer": tok.spec,
        "tokenizer_key": tok.key,
        "fit_dir": tok.fit_dir,
        "kept_codebooks": tok.kept,
        "caches": caches,
        "preset": preset.name,
        "preset_overrides": overrides,
        "seed": seed,
    }


def _metric_components(metrics: list[dict[str, Any]], steps: dict[str, Step]) -> list[dict]:
    """What of each metric spec changes its scores (the mini judge's folder does not: its
    step's key stands for it)."""
    return [
        {
            "name": m["name"],
            "code": m["code"],
            "args": {k: v for k, v in m["args"].items() if k != "mini_judge"},
            "judge": steps[m["judge"]].key if m["judge"] else None,
        }
        for m in metrics
    ]
