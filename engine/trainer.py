"""The one training loop: networks from specs + a registered method + named batch streams.

One iteration: schedule the lr of every parameter group -> for each micro-batch (every stream
split alike): ``method.forward_networks`` (which network sees which stream), ``method.task_loss``
and the method's weighted terms -> backward -> method hook -> optimizer step -> method hook
(e.g. a discriminator step) -> run hook ``after_step`` -> log / validate (evaluator) / save.
Nothing method-specific lives here.
"""
from __future__ import annotations

import contextlib
import random
import time
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import losses
from datasets import DatasetError, data_error_line, get_dataset_info
from engine.build import build_method
from engine.data import build_train_streams, build_val_loader, data_pipeline
from engine.guards import NonFiniteCounter, grads_finite, non_finite_terms, step_is_finite
from engine.networks import Networks
from engine.preflight import check_before_build, check_folders, check_free_space
from engine.optim import build_optimizer, scheduled_lr, set_lr
from engine.specs import BuildError, build_from_spec, build_teachers, student_spec, teacher_specs
from engine.state import NonFiniteState, RunFiles, load_resume_into, save_run_state
from engine.validation import Validator, scalar_figures
from engine.visual import ValidationPictures
from models.meta import model_meta
from models.param_groups import freeze_batchnorm
from utils.checkpoint import CheckpointWriteError, remove_stale_tmp, set_rng_state
from utils.distributed import all_reduce_sum, cleanup, init_distributed
from utils.logger import Board, setup_logger
from utils.sync_bn import convert_sync_batchnorm


class TrainingError(RuntimeError):
    """Stops the run with a one-line message (bad flags/files, non-finite loss)."""


class Trainer:
    def __init__(self, args) -> None:
        self.args = args
        self.spec: losses.MethodSpec = getattr(args, "method_spec", None) or losses.parse_spec(args.kd_method)
        self.dist = init_distributed(args.local_rank, args.device, timeout_s=args.dist_timeout)
        self.device = self.dist.device
        try:
            check_folders(args)     # the log goes there: before the logger opens its file
        except BuildError as exc:
            self._fail(str(exc))
        self.logger = setup_logger("segkd", args.log_dir, "%s_log.txt" % self._run_name(), self.dist.is_main)
        self.trains_student = self.spec.trains_student
        self.files = RunFiles(args, trains_student=self.trains_student)
        try:
            self.resume_path = self.files.resume_path_to_load()  # a file check: before any network is built
            # the data files are checked by one process (the others would only repeat it)
            check_before_build(args, self.spec, self.spec.streams_needed(args), with_data=self.dist.is_main)
            if self.dist.is_main:
                for name in remove_stale_tmp(args.save_dir):
                    self.logger.info("removed %s, a half-written checkpoint of a killed run", name)
            self._build()
        except (BuildError, ValueError) as exc:
            self._fail(str(exc))

    # ---------------------------------------------------------------- setup
    def _run_name(self) -> str:
        a = self.args
        teacher = [a.teacher_backbone] if self.spec.teachers_needed(a) else []
        return "_".join([a.kd_method.replace("+", "-"), a.student_model] + teacher + [a.student_backbone, a.dataset])

    def _fail(self, message: str) -> None:
        cleanup()
        raise TrainingError(message)

    def _seed(self) -> None:
        args = self.args
        torch.manual_seed(args.seed)
        random.seed(args.seed)
        np.random.seed(args.seed)
        if args.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def _build(self) -> None:
        args = self.args
        self._seed()
        self.info = get_dataset_info(args.dataset)
        self.student_spec = student_spec(args) if self.trains_student else None
        self.teacher_specs = teacher_specs(args, self.spec.teachers_needed(args))
        self.student: Optional[nn.Module] = None
        if self.student_spec is not None:
            self.student = build_from_spec(self.student_spec, self.spec, args).to(self.device)
            if args.disable_dropout:
                for m in self.student.modules():
                    if isinstance(m, nn.Dropout):
                        m.p = 0.0
            if args.freeze_bn:
                freeze_batchnorm(self.student)
        self.teachers = build_teachers(args, self.teacher_specs, self.spec, self.device)
        self.method = build_method(args, self.spec, self.student, self.teachers, self.device)
        align = model_meta(self.student).align_corners if self.student is not None else True
        self.method.set_task_criterion(losses.TaskLoss(
            args.task_loss, args.aux_weight if args.aux else 0.0, args.ignore_index, align_corners=align,
            ohem_thresh=args.ohem_thresh, ohem_min_kept=args.ohem_min_kept))
        if self.dist.distributed:
            if self.student is not None:
                self.student = convert_sync_batchnorm(self.student, self.device)
            self.method = convert_sync_batchnorm(self.method, self.device)
            # teachers in train-mode BN (MasKD stage 1, MGD) take batch statistics over all processes,
            # as the official SyncBN runs; in eval mode the converted layers behave as plain BN
            self.teachers = [convert_sync_batchnorm(t, self.device) for t in self.teachers]
        if args.channels_last:
            for net in [self.student] + self.teachers:
                if net is not None:
                    net.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(args, self.student, self.method.student_optimizer_parameters(),
                                         self.method.peer_networks())
        self._trained_params = [p for g in self.optimizer.param_groups for p in g["params"]]
        check_free_space(args.save_dir, self._checkpoint_bytes())
        self.nonfinite = NonFiniteCounter(args.skip_nonfinite)
        self.scaler = None
        if args.amp == "fp16":
            self.scaler = (torch.amp.GradScaler("cuda") if hasattr(torch.amp, "GradScaler")
                           else torch.cuda.amp.GradScaler())
        self.start_iteration, best_score, rng = 0, 0.0, None
        if self.resume_path:
            self.start_iteration, best_score, rng = load_resume_into(
                self.resume_path, args, self.student, self.method, self.optimizer, self.scaler)
            self.logger.info("resumed from %s at iteration %d (best %.4f)", self.resume_path,
                             self.start_iteration, best_score)
        self.rng_to_restore = rng
        self._wrap_ddp()
        self.method.prepare_run(self)
        self.train_loader = build_train_streams(args, self.spec.streams_needed(args), self.dist, self.start_iteration)
        self.val_loader = build_val_loader(args, self.dist)
        self.board = Board(args.log_dir, enabled=self.dist.is_main)
        pipeline = data_pipeline(args)
        self.pictures = ValidationPictures(self.board, self.info.palette, args.ignore_index, args.vis_images,
                                           pipeline)
        protocol = {"mode": args.val_mode, "crop": tuple(args.val_crop_size), "stride": tuple(args.val_stride),
                    "slide_pad": pipeline.slide_pad}
        self.validator = Validator(self.spec.build_evaluator(args, args.num_classes), self.val_loader, self.device,
                                   args.amp, args.save_dir, self.dist.is_main, self.pictures.on_image, protocol)
        self.validator.restore(best_score, self.start_iteration)
        self.nets = Networks(self.student_ddp if self.student is not None else None, self.teachers, self.device,
                             args.amp, args.max_iterations, args.ignore_index, args.channels_last)
        for spec in ([self.student_spec] if self.student_spec else []) + self.teacher_specs:
            self.logger.info("network: %s", spec.describe())
        self.logger.info("kd-method %s | streams %s | task %s | %d process(es) on %s | global batch %d | %d iterations",
                         self.method.describe(), list(self.train_loader.loaders), self.method.__dict__.get("task_criterion"),
                         self.dist.world_size, self.device, args.batch_size, args.max_iterations)

    def _checkpoint_bytes(self) -> int:
        """About what one save writes: the student file and the resume file (student, method, momentum)."""
        def size(tensors):
            return sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))
        student = size(self.student.state_dict().values()) if self.student is not None else 0
        return 2 * student + size(self.method.state_dict().values()) + size(self._trained_params)

    def _wrap_ddp(self) -> None:
        self.student_ddp = self.student
        self.method_ddp = self.method
        if not self.dist.distributed:
            return
        ids = [self.device.index] if self.device.type == "cuda" else None
        if self.student is not None:
            self.student_ddp = DDP(self.student, device_ids=ids)
        trained = {id(p) for p in self.method.student_optimizer_parameters()}
        if trained:
            # Parameters a method steps itself (e.g. SKD's discriminator) stay outside DDP;
            # the method averages their gradients over processes on its own.
            own = [n for n, p in self.method.named_parameters() if id(p) not in trained]
            DDP._set_params_and_buffers_to_ignore_for_model(self.method, own)
            self.method_ddp = DDP(self.method, device_ids=ids, find_unused_parameters=True)

    @property
    def best_score(self) -> float:
        return self.validator.best_score

    # ---------------------------------------------------------------- one step
    def _forward_terms(self, batch: Dict[str, losses.StreamBatch], iteration: int):
        ctx = self.method.forward_networks(self.nets, batch, iteration)
        task_terms = self.method.task_loss(ctx)
        if self.args.ce_reduction == "global" and self.dist.distributed and task_terms:
            task_terms = self._globally_normalised(task_terms, ctx.labels)
        ctx.task_terms = task_terms
        terms = dict(task_terms)
        for k, v in self.method_ddp(ctx).items():
            if k in terms:
                raise losses.TermConflict("--kd-method %s returns a term '%s' that its task loss already has"
                                          % (self.args.kd_method, k))
            terms[k] = v
        return terms, ctx

    def _globally_normalised(self, terms, labels):
        """Per-process CE means -> the global-batch mean (DDP averages gradients over processes)."""
        local = (labels != self.args.ignore_index).sum().double()
        total = all_reduce_sum(local.clone())
        scale = (local * self.dist.world_size / total.clamp_min(1)).to(torch.float32)
        return {k: v * scale for k, v in terms.items()}

    def _non_finite(self, iteration: int, values: Dict[str, float]) -> bool:
        """A bad step: stop (default) or skip it (--skip-nonfinite K). Returns True when skipped."""
        bad = non_finite_terms(values)
        where = ("term(s) %s" % ", ".join("'%s' = %s" % (k, values[k]) for k in bad)) if bad \
            else "the gradients (loss terms finite here; another process or the backward pass)"
        if self.nonfinite.bad_step():
            self.optimizer.zero_grad(set_to_none=True)
            self.logger.warning("non-finite step at iteration %d in %s: skipped (%d in a row, %d in all; "
                                "--skip-nonfinite %d)", iteration, where, self.nonfinite.in_a_row,
                                self.nonfinite.total, self.nonfinite.allowed)
            return True
        self._fail("non-finite loss at iteration %d in %s; stopped before the optimizer step (the weights "
                   "are untouched), last good checkpoint: %s%s" % (
                       iteration, where, self.files.last_saved or "none yet",
                       "" if self.nonfinite.allowed else " (--skip-nonfinite K skips such steps)"))
        return False    # not reached: _fail raises

    def _micro_batches(self, batch: Dict[str, losses.StreamBatch]):
        """Every stream moved to the device and split into --accum-steps micro-batches alike."""
        steps = self.args.accum_steps
        split = {}
        for name, stream in batch.items():
            images = stream.images.to(self.device, non_blocking=True)
            labels = stream.labels.to(self.device, non_blocking=True)
            if images.shape[0] % steps:
                raise ValueError("stream %s: per-process batch %d is not divisible by --accum-steps %d"
                                 % (name, images.shape[0], steps))
            per = images.shape[0] // steps
            split[name] = [losses.StreamBatch(i, l, stream.names[k * per:(k + 1) * per])
                           for k, (i, l) in enumerate(zip(images.chunk(steps), labels.chunk(steps)))]
        return [{name: parts[k] for name, parts in split.items()} for k in range(steps)]

    def _train_step(self, batch: Dict[str, losses.StreamBatch], iteration: int) -> Dict[str, float]:
        lr = scheduled_lr(self.args, iteration)
        set_lr(self.optimizer, lr)
        self.optimizer.zero_grad(set_to_none=True)
        logged: Dict[str, float] = {}
        micro = self._micro_batches(batch)
        term_names = set()
        for i, part in enumerate(micro):
            sync = contextlib.ExitStack()
            if i < len(micro) - 1:
                for net in (self.student_ddp, self.method_ddp):
                    if isinstance(net, DDP):
                        sync.enter_context(net.no_sync())
            with sync:
                try:
                    terms, ctx = self._forward_terms(part, iteration)
                except losses.TermConflict as exc:
                    self._fail(str(exc))
                values = {k: float(v.detach()) for k, v in terms.items()}
                total = sum(terms.values()) / len(micro)
                # Backward runs even for a NaN loss, so every process takes part in DDP's reduction.
                if torch.is_tensor(total) and total.requires_grad:
                    (self.scaler.scale(total) if self.scaler else total).backward()
            term_names.update(terms)
            for k, v in values.items():
                logged[k] = logged.get(k, 0.0) + v / len(micro)
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        # fp16: the GradScaler skips overflowing steps itself, so only the loss terms are checked.
        local_ok = not non_finite_terms(logged) and (self.scaler is not None or grads_finite(self._trained_params))
        if not step_is_finite(local_ok, self.device):
            if self._non_finite(iteration, logged):
                logged["skipped_nonfinite"] = float(self.nonfinite.total)
                logged["lr"] = lr
                return logged
        self.nonfinite.good_step()
        self.method.before_optimizer_step()
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        for k, v in self.method.after_optimizer_step(ctx).items():
            logged[k] = float(v.detach()) if torch.is_tensor(v) else float(v)
        logged["total"] = sum(v for k, v in logged.items() if k in term_names)
        logged["lr"] = lr
        return logged

    def train_step(self, batch: Dict[str, losses.StreamBatch], iteration: int) -> Dict[str, float]:
        """One optimiser step of the loop on ``batch`` (networks in training mode); the logged values.
        What ``train()`` does per iteration, without data loading, logging or checkpoints (benchmarks)."""
        self._train_mode()
        return self._train_step(batch, iteration)

    # ---------------------------------------------------------------- loop
    def _train_mode(self) -> None:
        if self.student is not None:
            self.student.train()
            if self.args.freeze_bn:
                freeze_batchnorm(self.student)
        for t in self.teachers:
            t.train(self.spec.teacher_mode == "train")  # MasKD stage 1 / MGD: BN batch statistics
        self.method.train()

    def train(self) -> None:
        args = self.args
        if self.rng_to_restore is not None:
            set_rng_state(self.rng_to_restore)
        elif self.dist.rank:
            torch.manual_seed(args.seed + self.dist.rank)  # dropout / method draws differ per process
        self._train_mode()
        self.method.before_train(self)
        progress = None
        if self.dist.is_main and not args.no_progress:
            from tqdm import tqdm
            progress = tqdm(total=args.max_iterations, initial=self.start_iteration, desc="train", dynamic_ncols=True)
        start_time, iteration = time.time(), self.start_iteration
        for batch in self._batches():
            iteration += 1
            values = self._train_step(batch, iteration)
            self.method.after_step(self, iteration, values)
            if progress is not None:
                progress.update(1)
                progress.set_postfix({k: "%.4g" % v for k, v in values.items() if k in ("total", "task", "lr")})
            if iteration % args.log_iter == 0 or iteration == args.max_iterations:
                self._log(iteration, values, start_time)
            validated = False
            if (not args.skip_val and self.val_loader is not None and self.trains_student
                    and (iteration % args.val_per_iters == 0 or iteration == args.max_iterations)):
                self._validate(iteration)
                validated = True
            if validated or iteration % args.save_per_iters == 0 or iteration == args.max_iterations:
                try:
                    save_run_state(self.files, args, iteration, self.student, self.method, self.optimizer,
                                   self.scaler, self.best_score, is_main=self.dist.is_main)
                except (NonFiniteState, CheckpointWriteError) as exc:
                    self._fail(str(exc))
            if args.stop_at_iteration is not None and iteration >= args.stop_at_iteration:
                self.logger.info("stopping at iteration %d as asked (--stop-at-iteration)", iteration)
                break
            if iteration >= args.max_iterations:
                break
        if progress is not None:
            progress.close()
        if iteration >= args.max_iterations:
            self.method.after_train(self)
        self.board.close()
        self.logger.info("done: iteration %d, best %s %.4f; files in %s", iteration, self.validator.best_key,
                         self.best_score, args.save_dir)
        cleanup()

    def _batches(self):
        """The stream loader, with data errors (also from worker processes) as one-line failures."""
        iterator = iter(self.train_loader)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except DatasetError as exc:
                self._fail("training data: %s" % data_error_line(exc))
            yield batch

    def _log(self, iteration: int, values: Dict[str, float], start_time: float) -> None:
        done = iteration - self.start_iteration
        elapsed = time.time() - start_time
        eta = elapsed / max(done, 1) * (self.args.max_iterations - iteration)
        text = " ".join("%s %.4g" % (k, v) for k, v in values.items())
        skipped = self.train_loader.skipped
        if skipped:
            text += " | skipped %d bad samples (--on-bad-sample skip)" % skipped
        self.logger.info("iter %d/%d | %s | %.2f it/s | eta %s", iteration, self.args.max_iterations, text,
                         done / max(elapsed, 1e-9), time.strftime("%H:%M:%S", time.gmtime(eta)))
        self.board.scalars({("lr" if k == "lr" else "loss/" + k): v for k, v in values.items()}, iteration)

    def _validate(self, iteration: int) -> None:
        self.pictures.begin(iteration)
        try:
            figures, improved = self.validator.run(self.student, iteration)
        except DatasetError as exc:
            self._fail("validation data: %s (the last checkpoint is intact; --on-bad-sample skip leaves damaged "
                       "images out)" % data_error_line(exc))
        self._train_mode()
        self.files.improved = improved
        figures = scalar_figures(figures)
        convention = ", %s mIoU" % self.args.val_miou if "mIoU" in figures else ""
        protocol = "whole image" if self.args.val_mode == "whole" else "slide %dx%d/%dx%d" % (
            tuple(self.args.val_crop_size) + tuple(self.args.val_stride))
        self.logger.info("val @ %d: %s (best %s %.4f%s) [%s pipeline, %s, single scale%s]", iteration,
                         " ".join("%s %.4f" % kv for kv in figures.items()), self.validator.best_key,
                         self.best_score, ", new best" if improved else "", self.args.pipeline, protocol, convention)
        self.board.scalars({"val/" + k: v for k, v in figures.items()}, iteration)
