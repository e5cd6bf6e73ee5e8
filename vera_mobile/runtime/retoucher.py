"""`Retoucher`: photo + instruction in, reasoning text + retouched photo out.

    retoucher = Retoucher.load("nano")  # or a checkpoint folder, or a bundle with backend="onnx"
    result = retoucher.retouch("photo.jpg", mode="auto", on_token=print)
    result.save("out/photo.png")

The same API serves every backend; this module wires a backend's methods to the shared
generation loop (generation.py) and the shared tiled renderer (vera_mobile/render.py).
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..builtin import BUILTIN_MODELS, resolve_model
from ..bundle import MANIFEST_NAME, Bundle, load_bundle
from ..errors import CheckpointError, InputError
from ..photo_io import Photo, load_photo, planner_view, reference_view, save_photo
from ..plan import Plan, parse_plan
from ..prompts import Request
from ..tokenizer import Tokenizer
from .generation import PlannerBackend, SamplingOptions, generate, prompt_embeddings
from ..render import DEFAULT_TILE, RendererBackend, render_pixels

PhotoLike = Any  # a path, bytes, a PIL image or a loaded Photo
# A planner checkpoint directory may hold the reference model under one of these names.
REFERENCE_CHECKPOINTS = ("encoder_renderer.pth", "encoder_renderer.safetensors")
REFERENCE_SUFFIXES = (".pth", ".safetensors")
RENDER_MODES = ("lut", "exact")
DEFAULT_RENDER = "lut"  # chosen from the measured LUT error (benchmarks/RESULTS.md)
# What `backend` names: the runtime of the whole pipeline. A checkpoint runs on torch; a bundle's
# exported programs run on ExecuTorch or ONNX Runtime.
CHECKPOINT_BACKENDS = ("torch",)
BUNDLE_BACKENDS = ("executorch", "onnx")
BACKENDS = CHECKPOINT_BACKENDS + BUNDLE_BACKENDS
_RUNTIME_MODULE = {"executorch": "executorch", "onnx": "onnxruntime"}
RENDERER_BACKENDS = BACKENDS  # vera_mobile/cli.py's --backend choices until it loads bundles itself


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
        return ExecuTorchRenderer(bundle.path(bundle.artifact(component, backend)["path"]))
    bundle.artifact(component, backend)  # a clear error if the bundle has no such renderer
    return OnnxRenderer(bundle.path(f"{component}_condition.onnx"), bundle.path(f"{component}_render_points.onnx"))


def _bundle_planner(bundle: Any, backend: str) -> PlannerBackend:
    if backend == "executorch":
        from .executorch_planner import ExecuTorchPlanner

        return ExecuTorchPlanner(bundle.path(bundle.artifact("planner", backend)["path"]))
    from .onnx_planner import OnnxPlanner

    return OnnxPlanner(bundle.directory)


def _bundle_reference(bundle: Any, backend: str) -> Any:
    from .reference_backends import ExecuTorchReferenceEncoder, OnnxReferenceEncoder

    path = bundle.path(bundle.artifact("reference", backend)["path"])
    return ExecuTorchReferenceEncoder(path) if backend == "executorch" else OnnxReferenceEncoder(path)


@dataclass
class RetouchResult:
    """Everything one retouch produced. `image` has the input's size, bit depth and orientation."""

    mode: str
    image: np.ndarray  # (H, W, 3) uint8 or uint16, sRGB
    latent: np.ndarray  # (3 * latent_dim,) after the mask
    mask: tuple[float, float, float]
    text: str = ""  # the reasoning as upstream saves it (special tokens removed, stripped)
    raw_text: str = ""  # the same with section and retouch tokens kept
    plan: Plan = field(default_factory=Plan)
    forced_retouch_tokens: list[str] = field(default_factory=list)  # appended because generation omitted them
    stop_reason: str = ""
    num_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    render: str = "exact"  # "exact" (every pixel through the renderer) or "lut" (baked 3D LUT)
    lut: np.ndarray | None = field(default=None, repr=False)  # the baked LUT in lut mode
    source: Photo | None = field(default=None, repr=False)

    def save(self, path: str | Path, protect: Sequence[str | Path] = ()) -> Path:
        """Write the retouched photo atomically (sRGB profile, EXIF and alpha carried over)."""
        return save_photo(self.image, path, like=self.source, protect=protect)

    def save_cube(self, path: str | Path) -> Path:
        """Write the baked LUT as a `.cube` file that editors and ffmpeg apply (lut mode only)."""
        from ..lut import write_cube

        if self.lut is None:
            raise InputError("this result was rendered in exact mode; render with render='lut' to get a LUT")
        return write_cube(path, self.lut, title=f"vera-mobile {self.mode}")

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record: plan, latent, flags and timings."""
        return {
            "mode": self.mode,
            "text": self.text,
            "plan": self.plan.to_dict(),
            "mask": list(self.mask),
            "latent": [round(float(v), 6) for v in self.latent],
            "forced_retouch_tokens": self.forced_retouch_tokens,
            "stop_reason": self.stop_reason,
            "render": self.render,
            "num_tokens": self.num_tokens,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


class Retoucher:
    """Runs the planner (auto/style/param) and/or the reference encoder, then the renderer."""

    def __init__(
        self,
        planner: PlannerBackend | None = None,
        tokenizer: Tokenizer | None = None,
        renderer: RendererBackend | None = None,
        eos_ids: Sequence[int] = (),
        image_size: int = 1024,
        reference: Any | None = None,
        reference_renderer: RendererBackend | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        self.planner, self.tokenizer, self.renderer = planner, tokenizer, renderer
        self.manifest = manifest  # the bundle's manifest, when loaded from one
        self.eos_ids, self.image_size = tuple(eos_ids), image_size
        self.reference, self.reference_renderer = reference, reference_renderer

    @classmethod
    def load(
        cls,
        path: str | Path,
        backend: str | None = None,
        *,
        reference: str | Path | None = None,
        dtype: str = "float32",
    ) -> "Retoucher":
        """Load whatever `path` is; `backend` is the runtime of the whole pipeline.

        * a bundle (a folder with manifest.json, from `vera-mobile export`): "executorch" or "onnx";
          by default the first of these the bundle has and this installation can run;
        * a planner checkpoint folder (config.json, upstream's layout) or a built-in model's name
          ("nano"): "torch" only;
        * a reference-model file (`encoder_renderer.pth` / `.safetensors`): "torch" only, reference mode.

        `reference` adds a reference model to a checkpoint; `dtype` is the torch weights' precision.
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
            return cls.from_bundle(bundle, backend or _bundle_default_backend(bundle))
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
        renderer_backend: str = "torch",
    ) -> "Retoucher":
        """Load a planner checkpoint directory (or a built-in model's name, e.g. "nano") and/or an
        `encoder_renderer.pth`, all on torch (`load` picks this for checkpoints).

        A directory is a planner checkpoint; an `encoder_renderer.pth` inside it (or passed as
        `reference`) enables reference mode. A `.pth` file alone gives a reference-only retoucher.
        Exported programs are loaded from bundles only (`load(bundle, backend=...)`);
        `renderer_backend` stays "torch" (vera_mobile/cli.py passes it until it loads bundles itself).
        """
        if renderer_backend not in CHECKPOINT_BACKENDS:
            raise InputError(
                f"a checkpoint runs on torch; to render on {renderer_backend}, export a bundle "
                "(vera-mobile export) and load it with backend=" + repr(renderer_backend)
            )
        import torch

        from ..models.checkpoint import load_planner
        from ..models.reference_checkpoint import load_encoder_renderer
        from .torch_backend import TorchPlanner, TorchReferenceEncoder, TorchRenderer

        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype)
        if torch_dtype is None:
            raise InputError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
        path = resolve_model(path)
        kwargs: dict[str, Any] = {}
        if path.is_dir():
            model, _ = load_planner(path, dtype=torch_dtype)
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
    def from_bundle(cls, path: str | Path | Bundle, backend: str = "executorch") -> "Retoucher":
        """Load an export bundle (see `vera-mobile export`) on the ExecuTorch or ONNX Runtime backend.

        Every file is checked against its sha256 in the manifest first. The planner, renderer and
        (if exported) reference encoder all run on `backend`; the generation loop and the tiled
        renderer are the same as for `from_pretrained`.
        """
        if backend not in BUNDLE_BACKENDS:
            raise InputError(f"a bundle runs on {' or '.join(BUNDLE_BACKENDS)}, got backend {backend!r}")
        bundle = path if isinstance(path, Bundle) else load_bundle(path)
        manifest = bundle.manifest
        kwargs: dict[str, Any] = {
            "tokenizer": Tokenizer.from_file(bundle.path(manifest["tokenizer"]["file"])),
            "eos_ids": manifest["tokenizer"]["eos_ids"],
            "image_size": manifest["model"]["image_size"],
            "renderer": renderer_from_bundle(bundle, "renderer", backend),
            "manifest": manifest,
        }
        if bundle.has("planner", backend):
            kwargs["planner"] = _bundle_planner(bundle, backend)
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
        mode: str = "auto",
        prompt: str | None = None,
        params: Mapping[str, object] | None = None,
        reference: tuple[PhotoLike, PhotoLike] | None = None,
        on_token: Callable[[str], None] | None = None,
        max_new_tokens: int = 1024,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        render: str = DEFAULT_RENDER,
        lut_size: int | None = None,
        tile: int = DEFAULT_TILE,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> RetouchResult:
        """Retouch one photo. Greedy decoding unless `temperature > 0` (then `seed` fixes it).

        `render="lut"` bakes the photo's colour function into a `lut_size`³ 3D LUT and applies it
        (fast, measured error in benchmarks/RESULTS.md); `render="exact"` runs every pixel.
        `on_token` streams the reasoning text; `progress(stage, done, total)` reports the
        "reasoning" stage in tokens (total = max_new_tokens) and the "render" stage in pixels.
        """
        request = Request(mode=mode, prompt=prompt, params=params)
        if mode not in self.modes:
            loaded = ", ".join(self.modes) or "none"
            raise InputError(f"mode {mode!r} needs a model this retoucher has not loaded (available: {loaded})")
        if max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if render not in RENDER_MODES:
            raise InputError(f"render must be one of {', '.join(RENDER_MODES)}, got {render!r}")
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        source = photo if isinstance(photo, Photo) else load_photo(photo)
        timings["load"] = time.perf_counter() - clock

        if mode == "reference":
            result = self._reference_latent(request, reference, timings)
            renderer = self.reference_renderer
        else:
            options = SamplingOptions(max_new_tokens, temperature, top_p, seed)
            on_step = None if progress is None else (lambda n: progress("reasoning", n, max_new_tokens))
            result = self._plan(request, source, options, on_token, on_step, timings)
            renderer = self.renderer

        mask = np.asarray(result.mask, np.float32)
        if render == "lut":
            self._render_lut(result, renderer, source, mask, lut_size, timings)
        else:
            clock = time.perf_counter()
            total_pixels, done = source.size[0] * source.size[1], [0]

            def rendered(count: int) -> None:
                done[0] += count
                progress("render", done[0], total_pixels)

            on_tile = None if progress is None else rendered
            result.image = render_pixels(renderer, source.pixels, result.latent, mask, tile=tile, progress=on_tile)
            timings["render"] = time.perf_counter() - clock
        result.render = render
        timings["total"] = sum(timings.values())
        result.timings, result.source = timings, source
        return result

    @staticmethod
    def _render_lut(
        result: RetouchResult,
        renderer: RendererBackend,
        photo: Photo,
        mask: np.ndarray,
        lut_size: int | None,
        timings: dict[str, float],
    ) -> None:
        from ..lut import DEFAULT_LUT_SIZE, apply_lut, bake_lut

        clock = time.perf_counter()
        biases = renderer.condition(result.latent, mask)
        result.lut = bake_lut(renderer, biases, lut_size or DEFAULT_LUT_SIZE)
        timings["lut_bake"] = time.perf_counter() - clock
        clock = time.perf_counter()
        result.image = apply_lut(photo.pixels, result.lut)
        timings["lut_apply"] = time.perf_counter() - clock

    def _plan(
        self,
        request: Request,
        photo: Photo,
        options: SamplingOptions,
        on_token: Callable[[str], None] | None,
        on_step: Callable[[int], None] | None,
        timings: dict[str, float],
    ) -> RetouchResult:
        assert self.planner is not None and self.tokenizer is not None
        clock = time.perf_counter()
        features = None
        # Param mode's prompt has no <image>: upstream computes the features and drops them; we skip them.
        if request.uses_image_tokens:
            features = self.planner.encode_image(planner_view(photo, self.image_size))
        timings["vision"] = time.perf_counter() - clock

        clock = time.perf_counter()
        embeds = prompt_embeddings(self.planner, self.tokenizer.encode_prompt(request.full_prompt()), features)
        generation = generate(self.planner, self.tokenizer, embeds, self.eos_ids, options, on_token, on_step)
        timings["generate"] = time.perf_counter() - clock

        clock = time.perf_counter()
        mask = request.mask()
        latent = self.planner.latent(generation.retouch_hidden, np.asarray(mask, dtype=np.float32))
        timings["head"] = time.perf_counter() - clock
        raw_text = self.tokenizer.decode(generation.token_ids, skip_special_tokens=False)
        return RetouchResult(
            mode=request.mode,
            image=np.empty(0),
            latent=latent,
            mask=mask,
            text=self.tokenizer.decode(generation.token_ids, skip_special_tokens=True).strip(),
            raw_text=raw_text,
            plan=parse_plan(raw_text),
            forced_retouch_tokens=generation.forced_tokens,
            stop_reason=generation.stop_reason,
            num_tokens=len(generation.token_ids),
        )

    def _reference_latent(
        self, request: Request, reference: tuple[PhotoLike, PhotoLike] | None, timings: dict[str, float]
    ) -> RetouchResult:
        if reference is None or len(reference) != 2:
            raise InputError("reference mode needs reference=(before, after): an example edit to imitate")
        clock = time.perf_counter()
        before, after = (p if isinstance(p, Photo) else load_photo(p) for p in reference)
        mask = request.mask()
        latent = self.reference.encode(reference_view(before), reference_view(after), np.asarray(mask, np.float32))
        timings["reference_encoder"] = time.perf_counter() - clock
        return RetouchResult(mode="reference", image=np.empty(0), latent=latent, mask=mask)


def load(
    path: str | Path, backend: str | None = None, *, reference: str | Path | None = None, dtype: str = "float32"
) -> Retoucher:
    """`Retoucher.load`: a bundle, a checkpoint folder, a reference-model file or a built-in model's name."""
    return Retoucher.load(path, backend, reference=reference, dtype=dtype)
