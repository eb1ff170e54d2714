"""The toy multimodal task: rendered scenes of coloured shapes, each with a question whose answer can be checked.

Each problem is a small rendered scene (default 56x56, which the tiny Qwen2.5-VL sees as 4 image tokens) of coloured
circles, squares and triangles on a 3x3 grid, one shape per cell and never touching, with a counting, comparison or
arithmetic question about it, in the five problem types of SophiaVL-R1-130k:

| problem type      | example question                                              | answer          |
|-------------------|---------------------------------------------------------------|-----------------|
| `numerical`       | How many red shapes and blue shapes are there altogether?     | `3`             |
| `multiple choice` | How many circles are there? (options A-D)                     | `B`             |
| `text`            | Which color has the most shapes?                              | `green`         |
| `free-form`       | In one short sentence, say how many red and blue shapes...    | `There are ...` |
| `OCR`             | What does the text in the image say? (a rendered word/number) | `lamp`          |

With `text_only_fraction > 0`, some non-OCR problems describe the scene in words instead of showing it (`image` is
`None`), as the text-only rows of the release do. Responses to these problems, and judge data, are written by
`sophia_trl.tiny.responses`.

Everything is deterministic by seed, and row `i` depends only on `(seed, i)`: the first `k` rows of a dataset of any
size are the same.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from datasets import Dataset, Features, Image, Value
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from ..prompts import build_prompt
from ..rewards.problem_types import PROBLEM_TYPES

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 160, 40),
    "blue": (30, 70, 220),
    "yellow": (235, 195, 0),
    "purple": (140, 40, 170),
}
SHAPES = ("circle", "square", "triangle")
BACKGROUND = (255, 255, 255)
TEXT_COLOR = (0, 0, 0)
GRID = 3  # 3x3 cells, one shape per cell at most, so shapes never overlap and can be counted from the pixels
OCR_WORDS = ("cat", "lamp", "tree", "moon", "fish", "star", "road", "bird", "cake", "ship", "kite", "rain")
# The question kinds this task draws for each problem type of the registry (an OCR problem is a rendered word or
# number). A type added to the registry without an entry here is not drawn.
QUESTION_KINDS = {
    "numerical": ("count_color", "count_kind", "count_total", "sum_colors", "diff_colors"),
    "multiple choice": ("count_color", "count_kind", "count_total", "sum_colors", "most_color"),
    "text": ("most_color", "most_kind"),
    "free-form": ("count_pair",),
    "OCR": ("ocr",),
}
# The problem types this task draws, in registry order (the round robin of `make_synthetic_dataset`).
SYNTHETIC_PROBLEM_TYPES = tuple(t for t in PROBLEM_TYPES if t in QUESTION_KINDS)

SYNTHETIC_FEATURES = Features(
    {
        "prompt": [{"role": Value("string"), "content": Value("string")}],
        "image": Image(),
        "solution": Value("string"),
        "problem_type": Value("string"),
        "problem": Value("string"),
        "data_source": Value("string"),
    }
)


@dataclass(frozen=True)
class Shape:
    """One shape of a scene: its kind, color, grid cell (reading order) and pixel box `(x0, y0, x1, y1)`, inclusive."""

    kind: str
    color: str
    cell: int
    box: tuple[int, int, int, int]


@dataclass
class SyntheticProblem:
    """
    One generated problem with everything needed to check it.

    `kind` is the question kind (`"count_color"`, `"count_kind"`, `"count_total"`, `"sum_colors"`, `"diff_colors"`,
    `"most_color"`, `"most_kind"`, `"count_pair"`, `"ocr"`) and `targets` its arguments (colors or a shape kind).
    `value` is the answer before formatting (a count, a color/kind name, the OCR text, or for `count_pair` the pair of
    counts); `answer` is what goes between the answer tags.
    """

    problem_type: str
    kind: str
    targets: tuple[str, ...]
    problem: str
    options: list[str]
    answer: str
    value: object
    shapes: list[Shape] = field(default_factory=list)
    text: str | None = None
    image: PILImage.Image | None = None


def ocr_font(image_size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The font OCR scenes are rendered with (Pillow's built-in font, scaled to the image)."""
    return ImageFont.load_default(size=max(8, image_size // 5))


def _plural(kind: str, n: int) -> str:
    return kind if n == 1 else kind + "s"


def _count(shapes: list[Shape], target: str) -> int:
    if target == "shape":
        return len(shapes)
    return sum(1 for s in shapes if target in (s.color, s.kind))


def tally_label(target: str, n: int) -> str:
    """`red shapes`, `circles`, `shapes`: how a tally category is named in text."""
    if target in SHAPES or target == "shape":
        return _plural(target, n)
    return f"{target} {_plural('shape', n)}"


def _sample_shapes(rng: random.Random, image_size: int) -> list[Shape]:
    cell = image_size // GRID
    if cell < 8:
        raise ValueError(f"image_size={image_size} is too small: each of the {GRID}x{GRID} cells needs >= 8 pixels.")
    num_shapes = rng.randint(3, 7)
    cells = sorted(rng.sample(range(GRID * GRID), num_shapes))
    shapes = []
    for c in cells:
        # A 1-pixel margin on every side of the cell keeps shapes in neighbouring cells from touching.
        size = rng.randint(max(5, round(cell * 0.55)), cell - 2)
        x0 = (c % GRID) * cell + 1 + rng.randint(0, cell - 2 - size)
        y0 = (c // GRID) * cell + 1 + rng.randint(0, cell - 2 - size)
        shapes.append(Shape(rng.choice(SHAPES), rng.choice(list(COLORS)), c, (x0, y0, x0 + size - 1, y0 + size - 1)))
    return shapes


def render_scene(shapes: list[Shape], image_size: int = 56, text: str | None = None) -> PILImage.Image:
    """
    Draw a scene without anti-aliasing, so every pixel is exactly the background, a palette color or the text color.

    Args:
        shapes (`list[Shape]`):
            Shapes to draw.
        image_size (`int`, *optional*, defaults to `56`):
            Width and height in pixels.
        text (`str` or `None`, *optional*, defaults to `None`):
            Text to draw in black, top-left corner at `(2, image_size // 3)`.

    Returns:
        `PIL.Image.Image`: An RGB image.
    """
    image = PILImage.new("RGB", (image_size, image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"  # no anti-aliasing: OCR text pixels are exactly TEXT_COLOR
    for shape in shapes:
        x0, y0, x1, y1 = shape.box
        fill = COLORS[shape.color]
        if shape.kind == "square":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        elif shape.kind == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        else:
            draw.polygon([((x0 + x1) / 2, y0), (x0, y1), (x1, y1)], fill=fill)
    if text is not None:
        draw.text((2, image_size // 3), text, fill=TEXT_COLOR, font=ocr_font(image_size))
    return image


def _describe(shapes: list[Shape]) -> str:
    items = [f"a {s.color} {s.kind}" for s in shapes]
    return "A box holds these shapes: " + ", ".join(items[:-1]) + " and " + items[-1] + "."


def _unique_argmax(shapes: list[Shape], candidates: tuple[str, ...]) -> str | None:
    counts = {c: _count(shapes, c) for c in candidates}
    best = max(counts.values())
    winners = [c for c, n in counts.items() if n == best]
    return winners[0] if len(winners) == 1 else None


def pair_sentence(c1: str, n1: int, c2: str, n2: int) -> str:
    """The sentence that states two tallies: `There are 2 red shapes and 1 blue shape.`"""
    verb = "is" if n1 == 1 else "are"
    return f"There {verb} {n1} {tally_label(c1, n1)} and {n2} {tally_label(c2, n2)}."


def _numeric_options(rng: random.Random, value: int) -> tuple[list[str], str]:
    candidates = [v for v in range(max(0, value - 3), value + 4) if v != value]
    values = rng.sample(candidates, 3) + [value]
    rng.shuffle(values)
    letters = "ABCD"
    return [f"{letters[i]}. {v}" for i, v in enumerate(values)], letters[values.index(value)]


def _question_text(kind: str, targets: tuple[str, ...], where: str) -> str:
    if kind == "count_color":
        return f"How many {targets[0]} shapes are there {where}?"
    if kind == "count_kind":
        return f"How many {_plural(targets[0], 2)} are there {where}?"
    if kind == "count_total":
        return f"How many shapes are there {where} in total?"
    if kind == "sum_colors":
        return f"How many {targets[0]} shapes and {targets[1]} shapes are there {where} altogether?"
    if kind == "diff_colors":
        return f"How many more {targets[0]} shapes than {targets[1]} shapes are there {where}?"
    if kind == "most_color":
        return f"Which color has the most shapes {where}?"
    if kind == "most_kind":
        return f"Which kind of shape (circle, square or triangle) appears most often {where}?"
    return (
        f"In one short sentence, say how many {targets[0]} shapes and how many {targets[1]} shapes there are {where}."
    )


def sample_problem(
    rng: random.Random, problem_type: str, image_size: int = 56, text_only: bool = False
) -> SyntheticProblem:
    """
    Draw one problem of the given type.

    Args:
        rng (`random.Random`):
            Source of randomness; the problem is a function of its state.
        problem_type (`str`):
            One of `"multiple choice"`, `"numerical"`, `"OCR"`, `"free-form"`, `"text"`.
        image_size (`int`, *optional*, defaults to `56`):
            Width and height of the rendered image.
        text_only (`bool`, *optional*, defaults to `False`):
            Describe the scene in the question instead of rendering it (`image=None`). Not possible for OCR.

    Returns:
        [`SyntheticProblem`]: The problem, its answer and its scene.
    """
    if problem_type not in SYNTHETIC_PROBLEM_TYPES:
        raise ValueError(f"Unknown problem_type {problem_type!r}: expected one of {list(SYNTHETIC_PROBLEM_TYPES)}.")
    if problem_type == "OCR":
        if text_only:
            raise ValueError("An OCR problem needs an image: text_only=True is not possible for problem_type 'OCR'.")
        text = rng.choice(OCR_WORDS) if rng.random() < 0.5 else str(rng.randint(10, 9999))
        return SyntheticProblem(
            problem_type="OCR",
            kind="ocr",
            targets=(),
            problem="What does the text in the image say?",
            options=[],
            answer=text,
            value=text,
            text=text,
            image=render_scene([], image_size, text=text),
        )

    # Scenes are redrawn until the question has a single right answer (a unique most frequent color or kind); with
    # 3-7 shapes this takes a few draws, so the bound is never reached in practice.
    for _ in range(1000):
        shapes = _sample_shapes(rng, image_size)
        present_colors = tuple(c for c in COLORS if _count(shapes, c))
        present_kinds = tuple(k for k in SHAPES if _count(shapes, k))
        kinds = QUESTION_KINDS[problem_type]
        # One kind is taken without drawing, so that the random stream (and every row after) stays as it was.
        kind = kinds[0] if len(kinds) == 1 else rng.choice(kinds)

        if kind == "most_color":
            targets = present_colors
            value = _unique_argmax(shapes, targets)
        elif kind == "most_kind":
            targets = present_kinds
            value = _unique_argmax(shapes, targets)
        elif kind == "count_color":
            targets = (rng.choice(list(COLORS)),)
            value = _count(shapes, targets[0])
        elif kind == "count_kind":
            targets = (rng.choice(SHAPES),)
            value = _count(shapes, targets[0])
        elif kind == "count_total":
            targets = ("shape",)
            value = len(shapes)
        else:  # sum_colors, diff_colors, count_pair: two distinct colors
            targets = tuple(rng.sample(list(COLORS), 2))
            n1, n2 = _count(shapes, targets[0]), _count(shapes, targets[1])
            if kind == "diff_colors" and n1 < n2:
                targets, n1, n2 = targets[::-1], n2, n1
            value = {"sum_colors": n1 + n2, "diff_colors": n1 - n2, "count_pair": (n1, n2)}[kind]
        if value is not None:
            break
    else:  # pragma: no cover - a unique answer is found within a few draws
        raise RuntimeError(f"Could not draw a scene with a unique answer for problem_type {problem_type!r}.")

    problem = _question_text(kind, targets, "in the box" if text_only else "in the image")
    if text_only:
        problem = _describe(shapes) + " " + problem

    options: list[str] = []
    if kind == "count_pair":
        answer = pair_sentence(targets[0], value[0], targets[1], value[1])
    elif problem_type == "multiple choice" and kind == "most_color":
        choices = [value] + rng.sample([c for c in COLORS if c != value], 3)
        rng.shuffle(choices)
        options = [f"{'ABCD'[i]}. {c}" for i, c in enumerate(choices)]
        answer = "ABCD"[choices.index(value)]
    elif problem_type == "multiple choice":
        options, answer = _numeric_options(rng, value)
    else:
        answer = str(value)
    return SyntheticProblem(
        problem_type=problem_type,
        kind=kind,
        targets=targets,
        problem=problem,
        options=options,
        answer=answer,
        value=value,
        shapes=shapes,
        image=None if text_only else render_scene(shapes, image_size),
    )


def _row_rng(seed: int, index: int, stream: str) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, independently of PYTHONHASHSEED: stable across runs.
    return random.Random(f"sophia-synthetic/{stream}/{seed}/{index}")


def resolve_problem_types(problem_types: list[str] | None) -> list[str]:
    """The problem types a dataset cycles through: all of `SYNTHETIC_PROBLEM_TYPES` for `None`, else the given ones."""
    problem_types = list(SYNTHETIC_PROBLEM_TYPES) if problem_types is None else list(problem_types)
    unknown = [t for t in problem_types if t not in SYNTHETIC_PROBLEM_TYPES]
    if unknown or not problem_types:
        raise ValueError(f"problem_types={problem_types!r}: each must be one of {list(SYNTHETIC_PROBLEM_TYPES)}.")
    return problem_types


def draw_problem(
    seed: int, index: int, stream: str, problem_types: list[str], image_size: int, text_only_fraction: float
) -> tuple[SyntheticProblem, random.Random]:
    """Row `index`'s problem in the random stream `stream` of `seed`, and the generator that drew it (the row's other
    draws, such as its response, go on from it)."""
    rng = _row_rng(seed, index, stream)
    problem_type = problem_types[index % len(problem_types)]  # round robin: types stay balanced in any prefix
    text_only = problem_type != "OCR" and rng.random() < text_only_fraction
    return sample_problem(rng, problem_type, image_size=image_size, text_only=text_only), rng


def make_synthetic_dataset(
    num_rows: int,
    seed: int = 0,
    image_size: int = 56,
    problem_types: list[str] | None = None,
    system_prompt: str | None = None,
    text_only_fraction: float = 0.0,
    start_index: int = 0,
) -> Dataset:
    """
    Generate the synthetic task in the format the GRPO recipe reads.

    Args:
        num_rows (`int`):
            Number of rows.
        seed (`int`, *optional*, defaults to `0`):
            Row `i` is a function of `(seed, i)` only.
        image_size (`int`, *optional*, defaults to `56`):
            Width and height of the images (56 gives 4 image tokens with the tiny Qwen2.5-VL).
        problem_types (`list[str]` or `None`, *optional*, defaults to `None`):
            Problem types to cycle through, in order; all five when `None`.
        system_prompt (`str` or `None`, *optional*, defaults to `None`):
            System message added to every prompt.
        text_only_fraction (`float`, *optional*, defaults to `0.0`):
            Probability that a non-OCR row describes its scene in words and has no image (`image=None`).
        start_index (`int`, *optional*, defaults to `0`):
            Index of the first row: rows `start_index, ..., start_index + num_rows - 1` are generated, so a test split
            can take the indices after the train split's.

    Returns:
        [`~datasets.Dataset`]: Columns `prompt` (conversational, plain-string content), `image` (PIL image or `None`),
        `solution` (`"<answer>X</answer>"`), `problem_type`, `problem` (the question without instructions) and
        `data_source` (`"synthetic"`).
    """
    if num_rows < 0 or start_index < 0:
        raise ValueError(f"num_rows and start_index must be >= 0, got {num_rows} and {start_index}.")
    if not 0.0 <= text_only_fraction <= 1.0:
        raise ValueError(f"text_only_fraction must be in [0, 1], got {text_only_fraction}.")
    problem_types = resolve_problem_types(problem_types)
    rows = []
    for index in range(start_index, start_index + num_rows):
        problem, _ = draw_problem(seed, index, "task", problem_types, image_size, text_only_fraction)
        rows.append(
            {
                "prompt": build_prompt(problem.problem, problem.problem_type, problem.options, system_prompt),
                "image": problem.image,
                "solution": f"<answer>{problem.answer}</answer>",
                "problem_type": problem.problem_type,
                "problem": problem.problem,
                "data_source": "synthetic",
            }
        )
    return Dataset.from_list(rows, features=SYNTHETIC_FEATURES)
