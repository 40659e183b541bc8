"""The one training loop for every modality and objective.

Per optimizer step: ``accumulate`` micro-batches → per-tower augmentation on the device → objective forward
under autocast → backward → (unscale, clip) → optimizer step → ``objective.on_step_end`` (EMA, queues, centres).
Around it: LR / weight-decay schedules, JSONL + TensorBoard metrics, collapse and k-NN monitors, atomic
checkpoints with exact resume, a wall-clock budget, clean stop on SIGTERM/SIGINT, and torchrun DDP.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from omnissl.train.assemble import Assembled
from omnissl.core.config import TrainConfig, dump_recipe
from omnissl.data.tensors import training_loader
from omnissl.train import checkpoint as ckpt
from omnissl.train.distributed import all_agree, autocast_dtype, init_distributed
from omnissl.train.guard import NonFiniteLossError, all_finite, bad_weights_error, describe, nonfinite_entries
from omnissl.train.knn_monitor import KnnMonitor
from omnissl.train.logging import MetricsWriter, atomic_write_text, read_metrics, write_note
from omnissl.train.monitors import CollapseError, StepMonitors
from omnissl.train.optim import apply_schedules, build_optimizer
from omnissl.train.progress import Progress
from omnissl.train.resolved import FILE_NAME, resolved_document, write_resolved
from omnissl.train.result import TrainResult
from omnissl.train.rundir import RunLock, prepare_run_dir
from omnissl.train.strategy import gradient_sync, load_model_state, local_tensors, model_state, prepare_model, uses_fsdp
from omnissl.core.types import to_device

__all__ = [
    "CollapseError",
    "NonFiniteLossError",
    "TrainResult",
    "Trainer",
    "place_for_training",
    "read_metrics",
    "train",
]


def place_for_training(objective: nn.Module, config: TrainConfig, device: torch.device) -> nn.Module:
    """Move ``objective`` to ``device`` in the layout training uses: with ``train.channels_last`` only the 4-D
    (conv) parameters change layout, and conv outputs follow their weights. Benchmarks that time steps outside the
    Trainer call this too, so they time what the Trainer runs."""
    objective = objective.to(device)
    if config.channels_last:
        objective.to(memory_format=torch.channels_last)
    return objective


class Trainer:
    def __init__(self, assembled: Assembled, run_dir: str | Path, *, resume: bool = False,
                 checkpoint: str | Path | None = None, recipe_source: str | None = None) -> None:
        """``recipe_source``: the recipe path as the user gave it, shown in the resume commands this prints."""
        self.assembled = assembled
        self.recipe = assembled.recipe
        self.config = assembled.recipe.train
        self.run_dir = Path(run_dir)
        self.resume_command = f"omnissl train {recipe_source or '<recipe>'} --run-dir {self.run_dir} --resume"
        self.dist, self.device = init_distributed(self.config.device)
        self._lock: RunLock | None = None
        if self.dist.is_main:  # held until fit() ends: no second process may train into this directory
            self._lock = prepare_run_dir(self.run_dir, resume=resume or checkpoint is not None)
        try:
            placed = place_for_training(assembled.objective, self.config, self.device)
            self.objective, self.model, notes = prepare_model(placed, config=self.config, dist=self.dist,
                                                              device=self.device)
            for note in notes if self.dist.is_main else []:
                write_note(self.run_dir, note)
            self.optimizer = build_optimizer(self.objective, self.config)
            self.amp_dtype = autocast_dtype(self.config.precision, self.device)
            self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
            if self.dist.is_main and self.config.precision == "auto" and self.amp_dtype == torch.float16:
                write_note(self.run_dir, "precision auto: fp16 with loss scaling (this GPU has no bf16); the "
                                         "non-finite guard still checks every step's loss")
            self.step = 0
            self.nonfinite_skips = 0
            # data.on_error: skip — samples the stream left out (all ranks), and the total at the last metrics line
            self.data_skipped, self._skipped_logged, self._stream_counts_skips = 0, 0, False
            self._stop_signal: str | None = None
            if resume or checkpoint is not None:
                path, payload = self._resume_payload(checkpoint)
                self._restore(payload)
                if self.dist.is_main:
                    write_note(self.run_dir, f"resumed from step {self.step} (checkpoint {path})")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the run directory (fit() does this when it ends)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ----------------------------------------------------------------- checkpoints
    def _resume_payload(self, checkpoint: str | Path | None) -> tuple[Path, dict[str, Any]]:
        """An explicit ``checkpoint`` is loaded as given; otherwise the newest one that verifies (with a note naming
        each damaged newer file, which is moved aside so keep_last does not count it)."""
        if checkpoint is not None:
            return Path(checkpoint), ckpt.load_checkpoint(Path(checkpoint), map_location=self.device)
        path, payload, notes = ckpt.load_for_resume(self.run_dir / "checkpoints", map_location=self.device,
                                                    move_aside=self.dist.is_main)
        for note in notes if self.dist.is_main else []:
            write_note(self.run_dir, note)
        return path, payload

    def _payload(self) -> dict[str, Any]:
        rng = {"torch": torch.random.get_rng_state()}
        if self.device.type == "cuda":  # a CPU run must not start CUDA (nor need it in a forked child)
            rng["cuda"] = torch.stack([s for s in torch.cuda.get_rng_state_all()])  # type: ignore[assignment]
        model, optimizer = model_state(self.objective, self.optimizer, config=self.config, dist=self.dist)
        return {"step": self.step, "model": model, "optimizer": optimizer,
                "scaler": self.scaler.state_dict(), "rng": rng, "nonfinite_skips": self.nonfinite_skips,
                "data_skipped": {"total": self.data_skipped, "logged": self._skipped_logged},
                "recipe": dump_recipe(self.recipe)}

    def _restore(self, payload: dict[str, Any]) -> None:
        load_model_state(self.objective, self.optimizer, payload, config=self.config, dist=self.dist)
        self.scaler.load_state_dict(payload["scaler"])
        torch.random.set_rng_state(payload["rng"]["torch"].cpu())
        if "cuda" in payload["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(list(payload["rng"]["cuda"].cpu()))
        self.step = int(payload["step"])
        self.nonfinite_skips = int(payload.get("nonfinite_skips", 0))
        skipped = payload.get("data_skipped", {})
        self.data_skipped, self._skipped_logged = int(skipped.get("total", 0)), int(skipped.get("logged", 0))

    def _last_good(self) -> str:
        return str(ckpt.latest_checkpoint(self.run_dir / "checkpoints") or "none yet")

    def save_checkpoint(self) -> Path | None:
        """Save the step checkpoint; weights holding NaN/Inf are never saved (a "last good" file must be good).
        Every rank calls it: under FSDP gathering the full state is a collective; only rank 0 writes."""
        payload = self._payload() if self.dist.is_main or uses_fsdp(self.config, self.dist) else None
        if payload is None or not self.dist.is_main:
            return None
        bad = nonfinite_entries(payload["model"])
        if bad:
            raise NonFiniteLossError(f"refusing to save the step {self.step} checkpoint: {describe(bad)}; "
                                     f"last good checkpoint: {self._last_good()}")
        return ckpt.save_step_checkpoint(payload, self.run_dir / "checkpoints", step=self.step,
                                         keep_last=self.config.keep_last, resume_command=self.resume_command)

    # ----------------------------------------------------------------- signals
    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stop_signal = signal.Signals(signum).name

    def _install_signal_handlers(self) -> dict[int, Any]:
        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return previous

    # ----------------------------------------------------------------- one step
    def _forward(self, batch: dict[str, Any]) -> Any:
        views = self.assembled.views(to_device(batch["x"], self.device))
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            return self.model(views)

    def train_step(self, batches: Any) -> tuple[Any, int, str]:
        """One optimizer step. Status: ``"ok"``; ``"nonfinite"`` (NaN/Inf loss or gradients: no update was made);
        ``"weights"`` (the update itself left NaN/Inf weights, which cannot be undone)."""
        self.optimizer.zero_grad(set_to_none=True)
        samples = 0
        output = None
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(self.config.accumulate):
            batch = next(batches)
            samples += self.assembled.batch_size(batch["x"])
            self._count_skipped(batch)
            with gradient_sync(self.model, config=self.config, dist=self.dist,
                               last_micro=micro == self.config.accumulate - 1):
                output = self._forward(batch)
                loss = output.loss / self.config.accumulate
                self.scaler.scale(loss).backward()
            loss_sum += loss.detach()
        output.loss = loss_sum
        # The loss is checked with the fp16 GradScaler on too: the scaler skips steps whose gradients overflow, as
        # it should, but a NaN loss makes it skip every step, quietly, for the rest of the run.
        grads = local_tensors([p.grad for p in self.objective.parameters() if p.grad is not None],
                              config=self.config, dist=self.dist)
        bad = not bool(torch.isfinite(loss_sum)) or (not self.scaler.is_enabled() and not all_finite(grads))
        if all_agree(bad, self.dist, self.device):
            return output, samples, "nonfinite"
        self.scaler.unscale_(self.optimizer)
        if self.config.clip_grad is not None:
            nn.utils.clip_grad_norm_(self.objective.parameters(), self.config.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        # Under FSDP each rank sees only its shards: the ranks agree, so all of them stop together.
        weights_bad = not all_finite(local_tensors(self.objective.parameters(), config=self.config, dist=self.dist))
        return output, samples, "weights" if all_agree(weights_bad, self.dist, self.device) else "ok"

    def _count_skipped(self, batch: dict[str, Any]) -> None:
        """Add the samples a stream batch left out under ``data.on_error: skip`` (summed over the ranks: every
        rank's loader is a stream, so every rank joins the reduction)."""
        if "skipped" not in batch:
            return
        self._stream_counts_skips = True
        count = torch.as_tensor(batch["skipped"], dtype=torch.long).reshape(()).to(self.device)
        if self.dist.enabled:
            torch.distributed.all_reduce(count)
        self.data_skipped += int(count)

    def _skip_logs(self) -> dict[str, float]:
        """``data/skipped`` since the previous metrics line and ``data/skipped_total``, for stream batches only."""
        if not self._stream_counts_skips:
            return {}
        since, self._skipped_logged = self.data_skipped - self._skipped_logged, self.data_skipped
        return {"data/skipped": float(since), "data/skipped_total": float(self.data_skipped)}

    # ----------------------------------------------------------------- loop
    def fit(self) -> TrainResult:
        """Train to ``train.steps`` (or the budget / a signal); the run directory is released when it returns."""
        try:
            return self._fit()
        except OSError as error:  # a full disk anywhere in the run directory: one line, nothing lost
            ckpt.raise_if_disk_full(error, what=f"{error.filename or 'the run directory'} at step {self.step}",
                                    directory=self.run_dir / "checkpoints", resume_command=self.resume_command)
            raise
        finally:
            self.close()

    def _fit(self) -> TrainResult:
        config = self.config
        start_step = self.step
        bundle = self.assembled.bundle
        loader = training_loader(bundle.train, bundle, batch_size=config.batch_size, seed=self.recipe.seed,
                                 start_batch=start_step * config.accumulate, num_workers=config.num_workers,
                                 rank=self.dist.rank, world_size=self.dist.world_size,
                                 pin_memory=self.device.type == "cuda")
        batches = iter(loader)
        writer = MetricsWriter(self.run_dir, enabled=self.dist.is_main, truncate_from_step=start_step)
        if self.dist.is_main and start_step == 0:
            atomic_write_text(self.run_dir / "recipe.yaml", dump_recipe(self.recipe))
        if self.dist.is_main and (start_step == 0 or not (self.run_dir / FILE_NAME).is_file()):
            write_resolved(self.run_dir, resolved_document(self.recipe, bundle.input_spec, self.assembled.resolved))
            for name, source in bundle.artifacts.items():
                (self.run_dir / "artifacts").mkdir(exist_ok=True)
                shutil.copyfile(source, self.run_dir / "artifacts" / name)
        knn = KnnMonitor(self.assembled, self.device, config) if config.knn_every and self.dist.is_main else None
        monitors = StepMonitors(config=config, knn=knn, enabled=self.dist.is_main)
        previous_handlers = self._install_signal_handlers()
        began, cpu_began = time.perf_counter(), time.process_time()
        saved, saved_step = began, -1
        samples_total, stopped_because, last_logs = 0, "steps", {}
        bar = Progress(total=config.steps, initial=start_step, enabled=self.dist.is_main)
        try:
            while self.step < config.steps:
                lr = apply_schedules(self.optimizer, self.step, config)
                tick = time.perf_counter()
                output, samples, status = self.train_step(batches)
                if status == "weights":
                    raise bad_weights_error(step=self.step + 1, loss=float(output.loss),
                                            state=self.objective.state_dict(), last_good=self._last_good())
                if status == "nonfinite":
                    self._handle_nonfinite(output, writer)
                else:
                    self.objective.on_step_end(step=self.step, total_steps=config.steps)
                self.step += 1
                samples_total += samples * self.dist.world_size
                rate = samples * self.dist.world_size / max(time.perf_counter() - tick, 1e-9)
                logged = self.step % config.log_every == 0 or self.step == config.steps
                if logged:
                    last_logs = {"loss": float(output.loss), "lr": lr, "samples_per_s": rate,
                                 **{k: float(v) for k, v in output.logs.items()}, **self._skip_logs()}
                    writer.write(self.step, last_logs)
                monitors.after_step(step=self.step, output=output, writer=writer, payload=self._payload,
                                    checkpoints=self.run_dir / "checkpoints", save_checkpoint=self.save_checkpoint)
                bar.update(step=self.step, logs=last_logs if logged else None,
                           samples=samples * self.dist.world_size)
                timed = config.checkpoint_minutes is not None and time.perf_counter() - saved > config.checkpoint_minutes * 60
                if config.checkpoint_every and self.step % config.checkpoint_every == 0 or timed:
                    self.save_checkpoint()
                    saved, saved_step = time.perf_counter(), self.step
                out_of_time = (config.max_minutes is not None and time.perf_counter() - began > config.max_minutes * 60
                               or config.max_cpu_minutes is not None
                               and time.process_time() - cpu_began > config.max_cpu_minutes * 60)
                if all_agree(out_of_time or self._stop_signal is not None, self.dist, self.device):
                    stopped_because = self._stop_signal or "time budget"
                    break
            if saved_step != self.step:
                self.save_checkpoint()
            bar.close()  # first, so the note below starts its own line instead of landing inside the bar
            if self._stop_signal is not None:
                writer.note(f"stopped by {self._stop_signal} at step {self.step}; resume with: {self.resume_command}")
        finally:
            bar.close()
            writer.close()
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
        seconds = time.perf_counter() - began
        return TrainResult(run_dir=self.run_dir, steps_done=self.step, seconds=seconds,
                           samples_per_second=samples_total / max(seconds, 1e-9), stopped_because=stopped_because,
                           cpu_seconds=time.process_time() - cpu_began, last_logs=last_logs,
                           start_step=start_step, data_skipped=self.data_skipped)

    def _handle_nonfinite(self, output: Any, writer: MetricsWriter) -> None:
        """Count a step whose loss or gradients were NaN/Inf (no update was made); stop past the allowance.
        The step is numbered as metrics.jsonl numbers it (1-based)."""
        terms = {k: float(v) for k, v in output.logs.items()}
        message = f"non-finite loss or gradient at step {self.step + 1} (loss {float(output.loss)}, terms {terms})"
        self.nonfinite_skips += 1
        writer.note(message)
        if self.config.nonfinite == "stop" or self.nonfinite_skips > self.config.max_nonfinite_skips:
            raise NonFiniteLossError(f"{message}; last good checkpoint: {self._last_good()}")


def train(assembled: Assembled, run_dir: str | Path, *, resume: bool = False,
          recipe_source: str | None = None) -> TrainResult:
    return Trainer(assembled, run_dir, resume=resume, recipe_source=recipe_source).fit()
