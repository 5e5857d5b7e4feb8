"""`tomobile eval video`: speed and quality of LPL / TDTM / spatial ToMe settings, measured together.

For a fixed prompt set and seeds, every setting generates the same clips (same initial noise) in
the same run, interleaved clip by clip so that machine load hits all settings alike. Reported per
setting: denoiser calls, wall-time ratio against the full 30-step baseline, prompt compliance from
the analytic detector (runtime/detect.py), and PSNR / SSIM against the baseline clip of that seed.

Mode sets: the settings can run under more than one set of the modes that follow the original code
by default (timesteps, LPL similarity, TDTM positions, TDTM odd frames), interleaved in the same
run; each set is measured against its own full baseline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from ..graphs.errors import InputError
from ..graphs.models.clips import parse_caption
from .detect import detect
from .flow_sampler import FlowSamplerConfig
from .report import psnr
from .sampler import LeapConfig, SamplerConfig
from .tables import markdown_table
from .video import Generation, RuntimeKind, VideoRuntime, artifact_tdtm, generate

log = logging.getLogger(__name__)

PROMPTS = (
    "a red circle moving left",
    "a green square moving right",
    "a blue triangle moving up",
    "a yellow circle moving down",
    "a red square moving up",
    "a green triangle moving down",
    "a blue circle moving right",
    "a yellow square moving left",
    "a red triangle moving right",
    "a green circle moving up",
    "a blue square moving down",
    "a yellow triangle moving left",
)
SEEDS = (0,)


@dataclass(frozen=True)
class ModeSet:
    """The four modes that follow the original code by default (README: Differences from the original code)."""

    name: str
    timesteps: str
    lpl_similarity: str
    tdtm_positions: str
    tdtm_odd: str

    @property
    def tdtm(self) -> dict[str, str]:
        return {"tdtm_positions": self.tdtm_positions, "tdtm_odd": self.tdtm_odd}

    def describe(self) -> str:
        return (f"{self.name}: timesteps {self.timesteps}, lpl similarity {self.lpl_similarity}, "
                f"tdtm positions {self.tdtm_positions}, tdtm odd frames {self.tdtm_odd}")


MODE_SETS = {
    "original": ModeSet("original", "discrete", "original", "original", "original"),
    "alternative": ModeSet("alternative", "continuous", "full", "midpoint", "keep"),
}


def mode_set(timesteps: str, lpl_similarity: str, tdtm: dict[str, str]) -> ModeSet:
    """The named set with these modes, or one named 'custom'."""
    values = (timesteps, lpl_similarity, tdtm["tdtm_positions"], tdtm["tdtm_odd"])
    for named in MODE_SETS.values():
        if (named.timesteps, named.lpl_similarity, *named.tdtm.values()) == values:
            return named
    return ModeSet("custom", *values)


def parse_mode_sets(text: str) -> list[ModeSet]:
    """'original,alternative' -> the named sets; a wrong name is a one-line error listing them."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in MODE_SETS]
    if bad or not names or len(set(names)) != len(names):
        raise InputError(f"bad --mode-sets value {text!r}; allowed: a comma list of {', '.join(MODE_SETS)}, each once")
    return [MODE_SETS[n] for n in names]


def mode_set_folders(kind: RuntimeKind, artifacts: list[str], sets: list[ModeSet]) -> dict[str, str | None]:
    """The export folder each mode set runs on: the one exported with its TDTM modes. Eager runs
    every set's modes itself (an --artifacts given with it is refused when the runtime opens)."""
    if kind is RuntimeKind.EAGER:
        return {s.name: artifacts[0] if artifacts else None for s in sets}
    recorded = {folder: artifact_tdtm(Path(folder), kind) for folder in artifacts}
    folders = {}
    for s in sets:
        match = [folder for folder, modes in recorded.items() if modes == s.tdtm]
        if not match:
            raise InputError(f"mode set {s.name} needs artifacts exported with --tdtm-positions {s.tdtm_positions} "
                             f"--tdtm-odd {s.tdtm_odd}; give that folder as another --artifacts")
        folders[s.name] = match[0]
    return folders


@dataclass(frozen=True)
class Setting:
    name: str
    sampler: SamplerConfig | FlowSamplerConfig  # video-dit-tiny's sampler, or a diffusers flow schedule's
    spatial: bool = False
    modes: str = ""  # the mode set's name; its runtime runs this setting


def default_settings(base: SamplerConfig, with_spatial: bool = True, modes: str = "") -> list[Setting]:
    """full 30; LPL at 15; LPL auto; TDTM 15; TDTM all; LPL 15 + TDTM 15; each also with spatial ToMe."""
    half, sim = base.steps // 2, base.leap.similarity
    plain = [
        Setting("full", base, modes=modes),
        Setting(f"lpl{half}", replace(base, leap=LeapConfig.parse(str(half), sim)), modes=modes),
        Setting("lpl-auto", replace(base, leap=LeapConfig.parse("auto", sim)), modes=modes),
        Setting(f"tdtm{half}", replace(base, tdtm_steps=half), modes=modes),
        Setting("tdtm-all", replace(base, tdtm_steps=base.steps), modes=modes),
        Setting(f"lpl{half}+tdtm{half}", replace(base, leap=LeapConfig.parse(str(half), sim), tdtm_steps=half), modes=modes),
    ]
    if not with_spatial:
        return plain
    return plain + [replace(s, name=s.name + "+tome", spatial=True) for s in plain]


def clip_psnr(ref: np.ndarray, x: np.ndarray) -> float:
    """PSNR of frames in [0, 1] (peak 1), 99 dB for clips equal within 1e-10 mean squared error
    (above 100 dB), so that tables show a number."""
    value = psnr(ref, x, peak=1.0)
    return 99.0 if value > 100.0 else value


def _gauss_matrix(n: int, size: int = 7, sigma: float = 1.5) -> np.ndarray:
    """(n - size + 1, n) banded matrix applying a 1D Gaussian window ('valid' convolution)."""
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    g /= g.sum()
    m = np.zeros((n - size + 1, n))
    for i in range(n - size + 1):
        m[i, i : i + size] = g
    return m


def ssim(ref: np.ndarray, x: np.ndarray) -> float:
    """Mean SSIM over frames and channels, 7x7 Gaussian window. ref, x (T, H, W, 3) in [0, 1]."""
    _, h, w, _ = ref.shape
    gh, gw = _gauss_matrix(h), _gauss_matrix(w)

    def blur(a: np.ndarray) -> np.ndarray:  # (T, H, W, 3) -> (T, H', W', 3)
        return np.einsum("ih,thwc,jw->tijc", gh, a, gw)

    a, b = ref.astype(np.float64), x.astype(np.float64)
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


@dataclass
class SettingStats:
    setting: Setting
    calls: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    compliance: list[dict[str, bool]] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    clips: list[np.ndarray] = field(default_factory=list)

    def rate(self, key: str) -> float:
        return 100.0 * float(np.mean([c[key] for c in self.compliance]))


@dataclass
class VideoEvalReport:
    runtime: str
    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    stats: list[SettingStats]

    def rows(self) -> list[dict]:
        """One row per setting; speed against the first setting of its mode set (its full baseline)."""
        base: dict[str, float] = {}
        out = []
        for s in self.stats:
            base.setdefault(s.setting.modes, sum(s.seconds))
            out.append({
                "modes": s.setting.modes,
                "setting": s.setting.name,
                "calls": float(np.mean(s.calls)),
                "speedup": base[s.setting.modes] / max(sum(s.seconds), 1e-9),
                "ms_per_clip": 1000.0 * float(np.mean(s.seconds)),
                "colour": s.rate("colour"), "shape": s.rate("shape"),
                "direction": s.rate("direction"), "all": s.rate("all"),
                "psnr": float(np.mean(s.psnr)), "ssim": float(np.mean(s.ssim)),
            })
        return out


def format_table(report: VideoEvalReport) -> str:
    header = ("modes", "setting", "calls", "speed vs full", "ms/clip", "colour %", "shape %", "direction %",
              "all three %", "PSNR dB", "SSIM")
    rows = []
    for r in report.rows():
        psnr_txt = "ref" if r["setting"] == "full" else f"{r['psnr']:.1f}"
        ssim_txt = "ref" if r["setting"] == "full" else f"{r['ssim']:.3f}"
        rows.append((r["modes"], r["setting"], f"{r['calls']:.1f}", f"{r['speedup']:.2f}x", f"{r['ms_per_clip']:.0f}",
                     f"{r['colour']:.0f}", f"{r['shape']:.0f}", f"{r['direction']:.0f}", f"{r['all']:.0f}", psnr_txt,
                     ssim_txt))
    return markdown_table(header, rows)


def warm_up(rt: VideoRuntime) -> None:
    """One call per denoiser variant, so session start-up cost stays out of the timings."""
    y, mask = rt.encode(PROMPTS[0])
    x = np.zeros(rt.shape, np.float32)
    for run in rt.denoisers.values():
        run(x, np.array([0.5], np.float32), y, mask, np.array([1.0], np.float32))


class EvalRuntime(Protocol):
    """What the eval itself reads of a runtime; `clip` and `warm` use the rest (VideoRuntime for
    video-dit-tiny, WanShapesRuntime for wan-shapes)."""

    kind: RuntimeKind


def run_video_eval(
    runtimes: EvalRuntime | dict[str, EvalRuntime],
    settings: list[Setting],
    prompts: tuple[str, ...] = PROMPTS,
    seeds: tuple[int, ...] = SEEDS,
    on_clip: Callable[[], None] | None = None,
    clip: Callable[..., Generation] = generate,
    warm: Callable[..., None] = warm_up,
) -> VideoEvalReport:
    """Every setting on every (prompt, seed), on the runtime of its mode set (`runtimes` keyed by
    Setting.modes, or one runtime for all); the first setting of each mode set is its reference.
    Timed end to end (text encoder + sampling), interleaved per clip. `clip(runtime, prompt, seed,
    sampler, spatial)` makes one clip (video-dit-tiny's `generate`, or another model's) and `warm`
    calls each of a runtime's denoisers once."""
    by_modes = runtimes if isinstance(runtimes, dict) else {s.modes: runtimes for s in settings}
    stats = [SettingStats(s) for s in settings]
    for rt in by_modes.values():
        warm(rt)
    for prompt in prompts:
        spec = parse_caption(prompt)
        if spec is None:
            raise ValueError(f"eval prompt {prompt!r} names no colour, shape and direction")
        for seed in seeds:
            refs: dict[str, np.ndarray] = {}
            for st in stats:
                start = time.perf_counter()
                gen = clip(by_modes[st.setting.modes], prompt, seed, st.setting.sampler, st.setting.spatial)
                st.seconds.append(time.perf_counter() - start)
                st.calls.append(gen.result.calls)
                st.compliance.append(detect(gen.frames).compliance(spec))
                ref = refs.setdefault(st.setting.modes, gen.frames)
                st.psnr.append(clip_psnr(ref, gen.frames))
                st.ssim.append(ssim(ref, gen.frames))
                st.clips.append(gen.frames)
            if on_clip is not None:
                on_clip()
    kind = next(iter(by_modes.values())).kind.value
    return VideoEvalReport(kind, tuple(prompts), tuple(seeds), stats)


def save_grid(report: VideoEvalReport, out: Path, clip_index: int = 0, scale: int = 3) -> None:
    """One row of frames per setting for one (prompt, seed), labelled; PNG."""
    from PIL import Image, ImageDraw

    rows = [("/".join(filter(None, (s.setting.modes, s.setting.name))), s.clips[clip_index]) for s in report.stats]
    t, h, w, _ = rows[0][1].shape
    label_w, pad = max(120, 8 + 6 * max(len(name) for name, _ in rows)), 2
    img = Image.new("RGB", (label_w + t * (w * scale + pad), len(rows) * (h * scale + pad) + 14), (40, 40, 40))
    draw = ImageDraw.Draw(img)
    prompt_i = clip_index // len(report.seeds)
    draw.text((4, 1), f"{report.prompts[prompt_i]} (seed {report.seeds[clip_index % len(report.seeds)]})", fill=(255, 255, 255))
    for r, (name, clip) in enumerate(rows):
        y = 14 + r * (h * scale + pad)
        draw.text((4, y + h * scale // 2 - 5), name, fill=(255, 255, 255))
        for f in range(t):
            tile = Image.fromarray((clip[f] * 255 + 0.5).astype(np.uint8)).resize((w * scale, h * scale), Image.NEAREST)
            img.paste(tile, (label_w + f * (w * scale + pad), y))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.png")
    img.save(tmp)
    tmp.replace(out)
