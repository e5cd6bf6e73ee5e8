"""`Retoucher`: photo + instruction in, reasoning text + retouched photo out.

    retoucher = Retoucher.load("nano")  # or a checkpoint folder, or a bundle with backend="onnx"
    result = retoucher.retouch("photo.jpg", Request("style", prompt="a warm film look"), on_token=print)
    result.save("out/photo.png")

The same API serves every backend; this module wires a backend's methods to the shared
generation loop (generation.py) and the shared tiled renderer (vera_mobile/render.py).
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np
from PIL import Image

from ..builtin import BUILTIN_MODELS, resolve_model
from ..bundle import MANIFEST_NAME, Bundle, load_bundle
from ..errors import CheckpointError, InputError
from ..photo_io import Photo, load_photo
from ..plan import parse_plan
from ..prompts import Request
from ..render import RendererBackend
from ..targets import RENDERER_METHOD_IO
from ..tokenizer import Tokenizer
from ..views import PLANNER_IMAGE_SIZE, planner_view, reference_view
from .generation import PlannerBackend, SamplingOptions, check_prompt_fits, generate, prompt_embeddings
from .result import Edit, Progress, Reasoning, RenderOptions, RetouchResult, draw

# What retouch accepts as a photo: a file path, a file's encoded bytes, a PIL image or a loaded Photo.
PhotoLike = Union[str, os.PathLike, bytes, Image.Image, Photo]
# A planner checkpoint directory may hold the reference model under one of these names.
REFERENCE_CHECKPOINTS = ("encoder_renderer.pth", "encoder_renderer.safetensors")
REFERENCE_SUFFIXES = (".pth", ".safetensors")
# What `backend` names: the runtime of the whole pipeline. A checkpoint runs on torch; a bundle's
# exported programs run on ExecuTorch or ONNX Runtime.
CHECKPOINT_BACKENDS = ("torch",)
BUNDLE_BACKENDS = ("executorch", "onnx")
BACKENDS = CHECKPOINT_BACKENDS + BUNDLE_BACKENDS
_RUNTIME_MODULE = {"executorch": "executorch", "onnx": "onnxruntime"}


def reference_checkpoint_in(directory: Path) -> Path | None:
    """The reference-model file inside a planner checkpoint directory, if it has one."""
    found = [directory / name for name in REFERENCE_CHECKPOINTS if (directory / name).is_file()]
    return found[0] if found else None


def _bundle_default_backend(bundle: Bundle) -> str:
    """The first bundle backend whose renderer the bundle has and whose runtime is installed."""
    runnable = [b for b in BUNDLE_BACKENDS if bundle.has("renderer", b) and importlib.util.find_spec(_RUNTIME_MODULE[b])]
    if not runnable:
        exported = [b for b in BUNDLE_BACKENDS if bundle.has("renderer", b)]
        raise InputError(
            f"{bundle.directory}: this bundle runs on {', '.join(exported) or 'no desktop runtime'}, and none is "
            "installed here (pip install 'vera-mobile[onnx]' or 'vera-mobile[executorch]')"
        )
    return runnable[0]


def renderer_from_bundle(bundle: Bundle, component: str, backend: str) -> RendererBackend:
    """One renderer of a bundle (`renderer` or `reference_renderer`) on ExecuTorch or ONNX Runtime."""
    from .renderer_backends import ExecuTorchRenderer, OnnxRenderer

    if backend == "executorch":
        return ExecuTorchRenderer(bundle.artifact_path(component, backend))
    paths = bundle.paths_by_role(component, backend, tuple(RENDERER_METHOD_IO))  # the manifest's verified files
    return OnnxRenderer(paths["condition"], paths["render_points"])


def _bundle_planner(bundle: Bundle, backend: str, resident: bool) -> PlannerBackend:
    if backend == "executorch":
        from .executorch_planner import ExecuTorchPlanner

        return ExecuTorchPlanner(bundle.artifact_path("planner", backend), resident=resident)
    from .onnx_planner import GRAPH_IO, OnnxPlanner

    return OnnxPlanner(bundle.paths_by_role("planner", backend, tuple(GRAPH_IO)), resident=resident)


def _bundle_reference(bundle: Bundle, backend: str) -> Any:
    from .reference_backends import ExecuTorchReferenceEncoder, OnnxReferenceEncoder

    path = bundle.artifact_path("reference", backend)
    return ExecuTorchReferenceEncoder(path) if backend == "executorch" else OnnxReferenceEncoder(path)


class Retoucher:
    """Runs the planner (auto/style/param) and/or the reference encoder, then the renderer.

    Thread-safety: a retoucher runs one retouch (or rerender) at a time; concurrent calls from
    other threads wait. Use one retoucher per thread to run retouches in parallel.
    """

    def __init__(
        self,
        planner: PlannerBackend | None = None,
        tokenizer: Tokenizer | None = None,
        renderer: RendererBackend | None = None,
        eos_ids: Sequence[int] = (),
        image_size: int = PLANNER_IMAGE_SIZE,
        reference: Any | None = None,
        reference_renderer: RendererBackend | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        self.planner, self.tokenizer, self.renderer = planner, tokenizer, renderer
        self.manifest = manifest  # the bundle's manifest, when loaded from one
        self.eos_ids, self.image_size = tuple(eos_ids), image_size
        self.reference, self.reference_renderer = reference, reference_renderer
        self._lock = threading.RLock()  # one retouch at a time: the planner backend holds K/V state

    @classmethod
    def load(
        cls,
        path: str | Path,
        backend: str | None = None,
        *,
        reference: str | Path | None = None,
        dtype: str = "float32",
        resident: bool = False,
    ) -> "Retoucher":
        """Load whatever `path` is; `backend` is the runtime of the whole pipeline.

        * a bundle (a folder with manifest.json, from `vera-mobile export`): "executorch" or "onnx";
          by default the first of these the bundle has and this installation can run;
        * a planner checkpoint folder (config.json, upstream's layout) or a built-in model's name
          ("nano"): "torch" only;
        * a reference-model file (`encoder_renderer.pth` / `.safetensors`): "torch" only, reference mode.

        `reference` adds a reference model to a checkpoint; `dtype` is the torch weights' precision.
        `resident` keeps a bundle planner's vision encoder and language model loaded together (see
        `from_bundle`); a checkpoint on torch always keeps everything loaded, so there it has no effect.
        """
        if backend is not None and backend not in BACKENDS:
            raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        source = resolve_model(path)
        if (source / MANIFEST_NAME).is_file():
            if reference is not None:
                raise InputError(f"{source} is a bundle: its reference encoder, if any, is exported inside it")
            if backend in CHECKPOINT_BACKENDS:
                raise InputError(
                    f"{source} is an export bundle: it runs on {' or '.join(BUNDLE_BACKENDS)}, not {backend}; "
                    "to run on torch, load the checkpoint it was exported from"
                )
            bundle = load_bundle(source)
            return cls.from_bundle(bundle, backend or _bundle_default_backend(bundle), resident=resident)
        is_checkpoint = (source / "config.json").is_file()
        if not (is_checkpoint or (source.is_file() and source.suffix in REFERENCE_SUFFIXES)):
            what = "does not exist" if not source.exists() else "is not one"
            raise CheckpointError(
                f"{path}: {what}; expected a bundle (folder with manifest.json), a checkpoint folder (config.json), "
                f"a reference model ({' or '.join(REFERENCE_CHECKPOINTS)}) or a built-in model name "
                f"({', '.join(BUILTIN_MODELS)})"
            )
        if backend not in (None, *CHECKPOINT_BACKENDS):
            raise InputError(
                f"{source} is a {'checkpoint' if is_checkpoint else 'reference model'}: it runs on torch; to run on "
                f"{backend}, export a bundle (vera-mobile export) and load that"
            )
        return cls.from_pretrained(source, reference=reference, dtype=dtype)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        reference: str | Path | None = None,
        dtype: str = "float32",
    ) -> "Retoucher":
        """Load a planner checkpoint directory (or a built-in model's name, e.g. "nano") and/or an
        `encoder_renderer.pth`, all on torch (`load` picks this for checkpoints).

        A directory is a planner checkpoint; an `encoder_renderer.pth` inside it (or passed as
        `reference`) enables reference mode. A `.pth` file alone gives a reference-only retoucher.
        Exported programs are loaded from bundles only (`load(bundle, backend=...)`).
        """
        from ..models.checkpoint import load_planner, torch_dtype
        from ..models.reference_checkpoint import load_encoder_renderer
        from .torch_backend import TorchPlanner, TorchReferenceEncoder, TorchRenderer

        weights_dtype = torch_dtype(dtype)
        path = resolve_model(path)
        kwargs: dict[str, Any] = {}
        if path.is_dir():
            model, _ = load_planner(path, dtype=weights_dtype)
            kwargs.update(
                planner=TorchPlanner(model),
                tokenizer=Tokenizer.from_dir(path),
                renderer=TorchRenderer(model.renderer),
                eos_ids=model.config.eos_token_ids,
                image_size=model.config.vision.image_size,
            )
            if reference is None:
                reference = reference_checkpoint_in(path)
        elif reference is None:
            reference = path
        if reference is not None:
            encoder_renderer = load_encoder_renderer(reference)
            kwargs.update(
                reference=TorchReferenceEncoder(encoder_renderer),
                reference_renderer=TorchRenderer(encoder_renderer.decoder),
            )
        return cls(**kwargs)

    @classmethod
    def from_bundle(
        cls, path: str | Path | Bundle, backend: str = "executorch", *, resident: bool = False
    ) -> "Retoucher":
        """Load an export bundle (see `vera-mobile export`) on the ExecuTorch or ONNX Runtime backend.

        Every file is checked against its sha256 in the manifest first. The planner, renderer and
        (if exported) reference encoder all run on `backend`; the generation loop and the tiled
        renderer are the same as for `from_pretrained`.

        By default the planner loads its vision encoder for each photo's one call and frees it before
        the language model runs, so peak memory is the larger part, not the sum. `resident=True` keeps
        both loaded: no reload per photo, for more memory (runtime/executorch_planner.py).
        """
        if backend not in BUNDLE_BACKENDS:
            raise InputError(f"a bundle runs on {' or '.join(BUNDLE_BACKENDS)}, got backend {backend!r}")
        bundle = path if isinstance(path, Bundle) else load_bundle(path)
        if not (bundle.has("planner", backend) or bundle.has("reference", backend)):  # e.g. a renderer-only bundle
            raise CheckpointError(
                f"{bundle.directory}: no planner or reference encoder for {backend}, so nothing to retouch with "
                f"(bundle has: {bundle.contents()}); a bare renderer opens with renderer_from_bundle"
            )
        manifest = bundle.manifest
        kwargs: dict[str, Any] = {
            "tokenizer": Tokenizer.from_file(bundle.path(manifest["tokenizer"]["file"])),
            "eos_ids": manifest["tokenizer"]["eos_ids"],
            "image_size": manifest["model"]["image_size"],
            "renderer": renderer_from_bundle(bundle, "renderer", backend),
            "manifest": manifest,
        }
        if bundle.has("planner", backend):
            kwargs["planner"] = _bundle_planner(bundle, backend, resident)
        if bundle.has("reference", backend):
            kwargs["reference"] = _bundle_reference(bundle, backend)
            kwargs["reference_renderer"] = renderer_from_bundle(bundle, "reference_renderer", backend)
        return cls(**kwargs)

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes this retoucher can run with what it has loaded."""
        planner_modes = ("auto", "style", "param") if self.planner is not None else ()
        return planner_modes + (("reference",) if self.reference is not None else ())

    def retouch(
        self,
        photo: PhotoLike,
        request: Request | None = None,
        *,
        reference: tuple[PhotoLike, PhotoLike] | None = None,
        sampling: SamplingOptions | None = None,
        render: RenderOptions | None = None,
        on_token: Callable[[str], None] | None = None,
        progress: Progress | None = None,
    ) -> RetouchResult:
        """Retouch one photo: `request` says the mode and what it needs (default: auto mode).

        Reference mode takes `reference=(before, after)`, an example edit to imitate. `sampling`
        is greedy decoding by default; `render` says how the photo is drawn (a 33³ LUT by default).
        `on_token` streams the reasoning text; `progress(stage, done, total)` reports the
        "reasoning" stage in tokens (total = max_new_tokens) and the "render" stage in pixels.
        Either callback may raise `vera_mobile.errors.Cancelled` to stop; it propagates.

        One retouch runs at a time per retoucher (it holds the planner's K/V cache): calls from
        other threads wait for the lock.
        """
        request = request or Request("auto")
        sampling = sampling or SamplingOptions()
        render = render or RenderOptions()
        self._check(request, reference, sampling, render)
        with self._lock:
            timings: dict[str, float] = {}
            clock = time.perf_counter()
            source = photo if isinstance(photo, Photo) else load_photo(photo)
            timings["load"] = time.perf_counter() - clock
            if request.mode == "reference":
                edit, reasoning = self._reference_edit(request, reference, timings), Reasoning()
            else:
                edit, reasoning = self._plan(request, source, sampling, on_token, progress, timings)
            return draw(edit, source, render, reasoning, timings, progress)

    def _check(self, request: Request, reference: Any, sampling: SamplingOptions, render: RenderOptions) -> None:
        """Refuse what this retoucher cannot run, before any work."""
        # The option objects check their own values when they are made; here only their types.
        for name, value, kind in (("request", request, Request), ("sampling", sampling, SamplingOptions),
                                  ("render", render, RenderOptions)):
            if not isinstance(value, kind):
                raise InputError(f"{name} must be a vera_mobile.{kind.__name__}, got {type(value).__name__}")
        if request.mode not in self.modes:
            loaded = ", ".join(self.modes) or "none"
            raise InputError(f"mode {request.mode!r} needs a model this retoucher has not loaded (available: {loaded})")
        if request.mode == "reference":
            if reference is None or len(reference) != 2:
                raise InputError("reference mode needs reference=(before, after): an example edit to imitate")
            return
        if reference is not None:
            raise InputError(f"reference photos are for reference mode, not {request.mode} mode")

    def _plan(
        self,
        request: Request,
        photo: Photo,
        sampling: SamplingOptions,
        on_token: Callable[[str], None] | None,
        progress: Progress | None,
        timings: dict[str, float],
    ) -> tuple[Edit, Reasoning]:
        prompt_ids = self.tokenizer.encode_prompt(request.full_prompt())
        check_prompt_fits(self.planner, len(prompt_ids))  # before any model runs
        clock = time.perf_counter()
        features = None
        # Param mode's prompt has no <image>: upstream computes the features and drops them; we skip them.
        if request.uses_image_tokens:
            features = self.planner.encode_image(planner_view(photo, self.image_size))
        timings["vision"] = time.perf_counter() - clock

        clock = time.perf_counter()
        total = sampling.max_new_tokens
        on_step = None if progress is None else (lambda count: progress("reasoning", count, total))
        embeds = prompt_embeddings(self.planner, prompt_ids, features)
        generation = generate(self.planner, self.tokenizer, embeds, self.eos_ids, sampling, on_token, on_step)
        timings["generate"] = time.perf_counter() - clock

        clock = time.perf_counter()
        latent = self.planner.latent(generation.retouch_hidden, _ALL_GROUPS)
        timings["head"] = time.perf_counter() - clock
        raw_text = self.tokenizer.decode(generation.token_ids, skip_special_tokens=False)
        reasoning = Reasoning(
            text=self.tokenizer.decode(generation.token_ids, skip_special_tokens=True).strip(),
            raw_text=raw_text,
            plan=parse_plan(raw_text),
            forced_retouch_tokens=tuple(generation.forced_tokens),
            stop_reason=generation.stop_reason,
            num_tokens=len(generation.token_ids),
        )
        return Edit(request, latent, self.renderer, self._lock), reasoning

    def _reference_edit(
        self, request: Request, reference: tuple[PhotoLike, PhotoLike], timings: dict[str, float]
    ) -> Edit:
        clock = time.perf_counter()
        before, after = (p if isinstance(p, Photo) else load_photo(p) for p in reference)
        latent = self.reference.encode(reference_view(before), reference_view(after), _ALL_GROUPS)
        timings["reference_encoder"] = time.perf_counter() - clock
        return Edit(request, latent, self.reference_renderer, self._lock)


# The retouch head and the reference encoder both multiply their latent by the group mask, so the
# latent for any mask is the all-groups latent with the switched-off groups zeroed (Edit.masked).
_ALL_GROUPS = np.ones(3, np.float32)


def load(
    path: str | Path,
    backend: str | None = None,
    *,
    reference: str | Path | None = None,
    dtype: str = "float32",
    resident: bool = False,
) -> Retoucher:
    """`Retoucher.load`: a bundle, a checkpoint folder, a reference-model file or a built-in model's name."""
    return Retoucher.load(path, backend, reference=reference, dtype=dtype, resident=resident)
