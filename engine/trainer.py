"""The one training loop: student (+ teachers) + a registered method, iteration-based, resumable.

One iteration: poly lr -> for each micro-batch: student forward, teachers forward under no_grad,
task loss + the method's weighted terms -> backward -> method hook -> optimizer step -> method
hook (e.g. a discriminator step) -> log / validate / save. Nothing method-specific lives here.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import time
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import losses
from datasets import get_dataset_info
from engine.build import BuildError, build_loaders, build_method, build_network, build_teachers
from engine.state import RunFiles, load_resume_into, save_run_state
from engine.visual import ValidationPictures
from utils.checkpoint import set_rng_state
from utils.distributed import all_reduce_sum, cleanup, init_distributed
from utils.evaluation import autocast_context, evaluate
from utils.logger import Board, setup_logger
from utils.sync_bn import convert_sync_batchnorm


class TrainingError(RuntimeError):
    """Stops the run with a one-line message (bad flags/files, non-finite loss)."""


def poly_lr(base: float, iteration: int, max_iterations: int, power: float, floor: float = 0.0) -> float:
    """CIRKD's poly schedule: lr for 1-based ``iteration`` = floor + (base - floor)(1 - (it-1)/max)^power."""
    return floor + (base - floor) * (1 - (iteration - 1) / max_iterations) ** power


class Trainer:
    def __init__(self, args) -> None:
        self.args = args
        self.dist = init_distributed(args.local_rank, args.device)
        self.device = self.dist.device
        self.logger = setup_logger("segkd", args.log_dir, "%s_log.txt" % self._run_name(), self.dist.is_main)
        self.trains_student = all(c.trains_student for c in losses.method_classes(args.kd_method))
        self.files = RunFiles(args, trains_student=self.trains_student)
        try:
            self.resume_path = self.files.resume_path_to_load()  # a file check: before any network is built
            self._build()
        except (BuildError, ValueError) as exc:
            self._fail(str(exc))

    # ---------------------------------------------------------------- setup
    def _run_name(self) -> str:
        a = self.args
        return "%s_%s_%s_%s_%s" % (a.kd_method.replace("+", "-"), a.student_model, a.teacher_backbone,
                                   a.student_backbone, a.dataset)

    def _fail(self, message: str) -> None:
        cleanup()
        raise TrainingError(message)

    def _build(self) -> None:
        args = self.args
        torch.manual_seed(args.seed)
        random.seed(args.seed)
        np.random.seed(args.seed)
        if args.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.info = get_dataset_info(args.dataset)
        n_teachers = losses.teachers_needed(args)
        self.student: Optional[nn.Module] = None
        if self.trains_student:
            self.student = build_network(args.student_model, args.student_backbone, args.num_classes, args.aux,
                                         args.student_pretrained, args.student_pretrained_base,
                                         args.student_head_width, role="student").to(self.device)
            if args.disable_dropout:
                for m in self.student.modules():
                    if isinstance(m, nn.Dropout):
                        m.p = 0.0
        self.teachers = build_teachers(args, n_teachers, self.device)
        self.teacher_train_mode = any(c.teacher_mode == "train" for c in losses.method_classes(args.kd_method))
        self.method = build_method(args, self.student, self.teachers, self.device)
        if self.dist.distributed:
            if self.student is not None:
                self.student = convert_sync_batchnorm(self.student, self.device)
            self.method = convert_sync_batchnorm(self.method, self.device)
        if args.channels_last:
            for net in [self.student] + self.teachers:
                if net is not None:
                    net.to(memory_format=torch.channels_last)
        params = list(self.method.student_optimizer_parameters())
        if self.student is not None:
            params = list(self.student.parameters()) + params
        if not params:
            self._fail("--kd-method %s trains nothing (no student and no method parameters)" % args.kd_method)
        self.optimizer = torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
        self.scaler = None
        if args.amp == "fp16":
            self.scaler = (torch.amp.GradScaler("cuda") if hasattr(torch.amp, "GradScaler")
                           else torch.cuda.amp.GradScaler())
        self.start_iteration, self.best_miou, rng = 0, 0.0, None
        if self.resume_path:
            self.start_iteration, self.best_miou, rng = load_resume_into(
                self.resume_path, args, self.student, self.method, self.optimizer, self.scaler)
            self.logger.info("resumed from %s at iteration %d (best mIoU %.4f)", self.resume_path,
                             self.start_iteration, self.best_miou)
        self.rng_to_restore = rng
        self.student_ddp = self.student
        self.method_ddp = self.method
        if self.dist.distributed:
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
        self.train_loader, self.val_loader = build_loaders(args, self.dist, self.start_iteration)
        self.board = Board(args.log_dir, enabled=self.dist.is_main)
        self.pictures = ValidationPictures(self.board, self.info.palette, args.ignore_index, args.vis_images)
        self.logger.info("kd-method %s | student %s/%s | teachers %s | %d process(es) on %s | global batch %d | %d iterations",
                         self.method.describe(), args.student_model if self.trains_student else "-",
                         args.student_backbone if self.trains_student else "-",
                         [t.arch_name for t in self.teachers],
                         self.dist.world_size, self.device, args.batch_size, args.max_iterations)

    # ---------------------------------------------------------------- one step
    def _forward_terms(self, images, labels, iteration: int):
        args = self.args
        amp = autocast_context(self.device, args.amp)
        with torch.no_grad(), amp:
            teacher_outs = [t(images) for t in self.teachers]
        student_out = None
        task_terms: Dict[str, torch.Tensor] = {}
        if self.student is not None:
            with amp:
                student_out = self.student_ddp(images)
            task_terms = losses.task_loss(student_out, labels, aux_weight=args.aux_weight if args.aux else 0.0,
                                          ignore_index=args.ignore_index)
            if args.ce_reduction == "global" and self.dist.distributed:
                task_terms = self._globally_normalised(task_terms, labels)
        ctx = losses.StepContext(student=student_out, labels=labels, iteration=iteration,
                                 max_iterations=args.max_iterations, teacher=teacher_outs[0] if teacher_outs else None,
                                 teachers=teacher_outs, images=images, ignore_index=args.ignore_index,
                                 task_terms=task_terms)
        terms = dict(task_terms)
        terms.update(self.method_ddp(ctx))
        return terms, ctx

    def _globally_normalised(self, terms, labels):
        """Per-process CE means -> the global-batch mean (DDP averages gradients over processes)."""
        local = (labels != self.args.ignore_index).sum().double()
        total = all_reduce_sum(local.clone())
        scale = (local * self.dist.world_size / total.clamp_min(1)).to(torch.float32)
        return {k: v * scale for k, v in terms.items()}

    def _check_finite(self, values: Dict[str, float], iteration: int) -> None:
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        flag = torch.tensor([float(len(bad))], device=self.device)
        all_reduce_sum(flag)
        if flag.item() > 0:
            where = ("term(s) %s" % ", ".join("'%s' = %s" % (k, values[k]) for k in bad)) if bad \
                else "another process"
            last = self.files.last_saved or "none yet"
            self._fail("non-finite loss at iteration %d in %s; stopped, last good checkpoint: %s"
                       % (iteration, where, last))

    def _train_step(self, batch, iteration: int) -> Dict[str, float]:
        args = self.args
        images, labels = batch[0].to(self.device, non_blocking=True), batch[1].to(self.device, non_blocking=True)
        if args.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        lr = poly_lr(args.lr, iteration, args.max_iterations, args.power, args.lr_min)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        logged: Dict[str, float] = {}
        chunks = list(zip(images.chunk(args.accum_steps), labels.chunk(args.accum_steps)))
        for i, (img, lab) in enumerate(chunks):
            last = i == len(chunks) - 1
            sync = contextlib.ExitStack()
            if not last:
                for net in (self.student_ddp, self.method_ddp):
                    if isinstance(net, DDP):
                        sync.enter_context(net.no_sync())
            with sync:
                terms, ctx = self._forward_terms(img, lab, iteration)
                values = {k: float(v.detach()) for k, v in terms.items()}
                self._check_finite(values, iteration)
                total = sum(terms.values()) / len(chunks)
                (self.scaler.scale(total) if self.scaler else total).backward()
            for k, v in values.items():
                logged[k] = logged.get(k, 0.0) + v / len(chunks)
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        self.method.before_optimizer_step()
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        for k, v in self.method.after_optimizer_step(ctx).items():
            logged[k] = float(v.detach()) if torch.is_tensor(v) else float(v)
        logged["total"] = sum(v for k, v in logged.items() if k in terms)
        logged["lr"] = lr
        return logged

    # ---------------------------------------------------------------- loop
    def train(self) -> None:
        args = self.args
        if self.rng_to_restore is not None:
            set_rng_state(self.rng_to_restore)
        elif self.dist.rank:
            torch.manual_seed(args.seed + self.dist.rank)  # dropout / method draws differ per process
        if self.student is not None:
            self.student.train()
        for t in self.teachers:
            t.train(self.teacher_train_mode)  # MasKD stage 1: BN batch statistics and dropout on
        self.method.train()
        progress = None
        if self.dist.is_main and not args.no_progress:
            from tqdm import tqdm
            progress = tqdm(total=args.max_iterations, initial=self.start_iteration, desc="train", dynamic_ncols=True)
        start_time, iteration = time.time(), self.start_iteration
        for batch in self.train_loader:
            iteration += 1
            values = self._train_step(batch, iteration)
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
                save_run_state(self.files, args, iteration, self.student, self.method, self.optimizer,
                               self.scaler, self.best_miou, is_main=self.dist.is_main)
            if args.stop_at_iteration is not None and iteration >= args.stop_at_iteration:
                self.logger.info("stopping at iteration %d as asked (--stop-at-iteration)", iteration)
                break
            if iteration >= args.max_iterations:
                break
        if progress is not None:
            progress.close()
        self.board.close()
        self.logger.info("done: iteration %d, best mIoU %.4f; files in %s", iteration, self.best_miou, args.save_dir)
        cleanup()

    def _log(self, iteration: int, values: Dict[str, float], start_time: float) -> None:
        done = iteration - self.start_iteration
        elapsed = time.time() - start_time
        eta = elapsed / max(done, 1) * (self.args.max_iterations - iteration)
        text = " ".join("%s %.4g" % (k, v) for k, v in values.items())
        skipped = getattr(self.train_loader.dataset, "skipped", 0)
        if skipped:
            text += " | skipped %d bad samples (--on-bad-sample skip)" % skipped
        self.logger.info("iter %d/%d | %s | %.2f it/s | eta %s", iteration, self.args.max_iterations, text,
                         done / max(elapsed, 1e-9), time.strftime("%H:%M:%S", time.gmtime(eta)))
        self.board.scalars({("lr" if k == "lr" else "loss/" + k): v for k, v in values.items()}, iteration)

    def _validate(self, iteration: int) -> None:
        args = self.args
        self.pictures.begin(iteration)
        metric = evaluate(self.student, self.val_loader, args.num_classes, args.ignore_index,
                          self.device, amp=args.amp, on_image=self.pictures.on_image if self.dist.is_main else None)
        scores = metric.get(absent=args.val_miou)
        miou, pix = float(scores["mIoU"]), float(scores["pixAcc"])
        if math.isnan(miou):
            miou = 0.0
        improved = miou > self.best_miou
        self.best_miou = max(self.best_miou, miou)
        self.files.improved = improved
        self.logger.info("val @ %d: pixAcc %.4f mIoU %.4f (best %.4f%s) [whole image, single scale, %s mIoU]",
                         iteration, pix, miou, self.best_miou, ", new best" if improved else "", args.val_miou)
        self.board.scalars({"val/mIoU": miou, "val/pixAcc": pix}, iteration)
