"""Monocular priors: one interface, `prior.predict(frame) -> H x W float32 relative inverse depth` (larger = nearer,
unknown scale and shift) at the frame's full image resolution, and `prior.predict_tensor(frame, device)`, the same
map as a torch tensor on a device (the pipeline's form: a network's output stays where it was computed and goes to
the Aligner without a host round trip). Networks are frozen (eval mode, no gradients).

Sources:
  DepthAnythingV2Prior   Depth Anything V2 through transformers (`AutoModelForDepthEstimation` + `AutoImageProcessor`)
                         from a Hugging Face id or a local folder (default depth-anything/Depth-Anything-V2-Small-hf);
                         device-aware, optional fp16 on CUDA.
  PrecomputedPrior       a folder of `<frame_id>.npy` maps (any size, resized bilinearly), e.g. Astyx mono_fastdepth.
  FramePrior             `frame.prior` as delivered with the frame: the synthetic generator's simulated prior and the
                         ROS topic prior arrive this way.
`make_prior(spec)` parses "precomputed:DIR" | "depth-anything-v2[:ID_OR_PATH]" | "synthetic" | "topic" | "frame"
(`config.parse_prior_spec`, the one spec parser). A prior that cannot be made raises `PriorError` naming the source
and what is missing; `pipeline.load_prior` is where every entry point makes its prior.
"""

from __future__ import annotations

import abc
from pathlib import Path

import numpy as np

from ..config import FRAME_PRIOR_SOURCES, PRIOR_SOURCES, parse_prior_spec
from ..errors import RacalnetError
from ..frame import Frame, FrameError

DEFAULT_DEPTH_ANYTHING = "depth-anything/Depth-Anything-V2-Small-hf"


class PriorError(RacalnetError, ValueError):
    """A prior source that is unknown or lacks its folder / model; the message names it."""


class PriorUnavailable(RacalnetError, FileNotFoundError):
    """The prior's folder or model is not there (or cannot be loaded); the message names it and what to do."""


class MonocularPrior(abc.ABC):
    """Relative inverse depth of a frame's image, H x W float32 at the image's resolution."""

    name: str = "prior"

    @abc.abstractmethod
    def predict(self, frame: Frame) -> np.ndarray:
        """H x W float32 relative inverse depth (finite)."""

    def predict_tensor(self, frame: Frame, device: str = "cpu"):
        """The prior as an H x W float32 torch tensor on `device` (host priors: one upload)."""
        from .tensors import as_tensor

        return as_tensor(self.predict(frame), device)

    def __call__(self, frame: Frame) -> np.ndarray:
        return self.predict(frame)


class FramePrior(MonocularPrior):
    """Uses `frame.prior` (simulated prior of synthetic frames, prior topic of the ROS node)."""

    name = "frame"

    def predict(self, frame: Frame) -> np.ndarray:
        if frame.prior is None:
            raise FrameError(f"prior: frame {frame.frame_id!r} carries no prior (frame.prior is None); choose another "
                             "prior source (precomputed:DIR or depth-anything-v2)")
        return np.asarray(frame.prior, np.float32)


class PrecomputedPrior(MonocularPrior):
    """A folder of `<frame_id>.npy` relative inverse-depth maps, resized bilinearly to the image size."""

    name = "precomputed"

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise PriorUnavailable(f"precomputed prior: folder {self.directory} does not exist")

    def predict(self, frame: Frame) -> np.ndarray:
        from ..datasets.priors import load_precomputed_prior  # DatasetError naming the file when it is missing

        return load_precomputed_prior(self.directory, frame.frame_id, (frame.height, frame.width))


class DepthAnythingV2Prior(MonocularPrior):
    """Depth Anything V2 (relative head) via transformers, frozen. `model` is a Hugging Face id or a local folder
    holding config.json, the weights and preprocessor_config.json; where the files come from (folder, local cache,
    one download when online) is decided by weights.locate_depth_anything, then transformers loads them offline. The
    image is preprocessed on the model's device (transformers' torchvision-backed DPTImageProcessor, `device=`), and
    the network's output (relative inverse depth at the processor's resolution) is resized bilinearly to the image
    size there."""

    name = "depth-anything-v2"

    def __init__(self, model: str = DEFAULT_DEPTH_ANYTHING, device: str = "cpu", fp16: bool = False):
        from .weights import locate_depth_anything

        self.model_id = str(model)
        self.folder = locate_depth_anything(self.model_id)  # before torch is imported: an offline miss fails fast
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        try:
            processor = AutoImageProcessor.from_pretrained(self.folder, local_files_only=True)
            net = AutoModelForDepthEstimation.from_pretrained(self.folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PriorUnavailable(f"depth-anything-v2: cannot load {self.model_id!r} from {self.folder}: {first}"
                                   ) from None
        self._setup(net, processor, device, fp16)

    def _setup(self, net, processor, device: str, fp16: bool) -> None:
        import torch

        self.processor = processor
        self.device = torch.device(device)
        self.fp16 = bool(fp16) and self.device.type == "cuda"  # fp16 only on CUDA; CPU stays fp32
        net.eval().requires_grad_(False)
        self.net = net.to(self.device, dtype=torch.float16 if self.fp16 else torch.float32)

    @classmethod
    def small_random(cls, device: str = "cpu", fp16: bool = False, seed: int = 0) -> "DepthAnythingV2Prior":
        """Depth Anything V2 Small's architecture (ViT-S/14 DINOv2 backbone, DPT head, ~25 M parameters) and
        preprocessing (518 px short side, multiple of 14, bicubic, ImageNet normalisation) with RANDOM weights,
        built offline from a transformers config: for timing only (benchmarks, scripts/bench_gpu.sh)."""
        import torch
        from transformers import (DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config,
                                  DPTImageProcessor)

        backbone = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
                                image_size=518, patch_size=14, out_indices=[3, 6, 9, 12], reshape_hidden_states=False)
        cfg = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=384,
                                  reassemble_factors=[4, 2, 1, 0.5], neck_hidden_sizes=[48, 96, 192, 384],
                                  fusion_hidden_size=64, head_hidden_size=32, depth_estimation_type="relative")
        torch.manual_seed(seed)
        net = DepthAnythingForDepthEstimation(cfg)
        processor = DPTImageProcessor(do_resize=True, size={"height": 518, "width": 518}, keep_aspect_ratio=True,
                                      ensure_multiple_of=14, resample=3, do_rescale=True, do_normalize=True,
                                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
        prior = cls.__new__(cls)
        prior.model_id = "random:depth-anything-v2-small"
        prior._setup(net, processor, device, fp16)
        return prior

    def predict_tensor(self, frame: Frame, device: Optional[str] = None):
        """H x W float32 relative inverse depth on the model's device (or `device`)."""
        import torch
        import torch.nn.functional as F

        inputs = self.processor(images=frame.image, return_tensors="pt", device=self.device)
        pixels = inputs["pixel_values"].to(self.device, dtype=next(self.net.parameters()).dtype)  # 1 x 3 x h x w
        with torch.inference_mode():
            rel = self.net(pixel_values=pixels).predicted_depth  # 1 x h x w, relative inverse depth
            rel = F.interpolate(rel[:, None].float(), size=(frame.height, frame.width), mode="bilinear",
                                align_corners=False)[0, 0]  # H x W
        return rel if device is None else rel.to(device)

    def predict(self, frame: Frame) -> np.ndarray:
        return self.predict_tensor(frame).cpu().numpy().astype(np.float32)


def make_prior(spec: str, device: str = "cpu", fp16: bool = False) -> MonocularPrior:
    """Build a prior from a spec string (`config.parse_prior_spec`):
    "frame" | "synthetic" | "topic" (frame.prior) ; "precomputed:DIR" ; "depth-anything-v2" | "depth-anything-v2:ID_OR_PATH".
    PriorError for an unknown source or a precomputed source without a folder, PriorUnavailable when the folder or
    model is not there."""
    p = parse_prior_spec(spec)
    kind, arg = p["prior.source"], p["prior.path"]
    if kind in FRAME_PRIOR_SOURCES:
        return FramePrior()
    if kind == "precomputed":
        if not arg:
            raise PriorError("prior: 'precomputed' needs a folder, e.g. precomputed:/data/astyx/mono_fastdepth")
        return PrecomputedPrior(arg)
    if kind == "depth-anything-v2":
        return DepthAnythingV2Prior(arg or DEFAULT_DEPTH_ANYTHING, device=device, fp16=fp16)
    raise PriorError(f"prior: unknown source {spec!r}; use {' | '.join(PRIOR_SOURCES[:3])} | precomputed:DIR | "
                     "depth-anything-v2[:ID_OR_PATH]")
