"""A generated multimodal reasoning task with checkable answers, for offline runs, tests and benchmarks.

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
`None`), as the text-only rows of the release do.

[`make_thinking_dataset`] turns the same problems into judge data: a `<think>...</think><answer>...</answer>` response
with sound or deliberately flawed reasoning, scored by the fraction of its steps that are right (the final answer is
one step), rounded to the nearest tenth. Flaws: a miscount carried to the end, a one-off slip the reasoning recovers
from, irrelevant filler, a repeated step, a wrong final answer after sound steps, a bare guess.

Everything is deterministic by seed, and row `i` depends only on `(seed, i)`: the first `k` rows of a dataset of any
size are the same.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from datasets import Dataset, Features, Image, Value
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from .data import JUDGE_DATA_FEATURES
from .prompts import build_prompt, format_question
from .rewards.problem_types import PROBLEM_TYPES

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
FLAWS = ("miscount", "slip", "filler", "repetition", "wrong_answer", "guess")
FILLER_SENTENCES = (
    "Shapes like these are often used in children's books.",
    "The weather has nothing to do with this, but it is sunny today.",
    "I once saw a painting with many colors.",
    "Some people prefer squares to circles.",
    "Let me also mention that triangles have three sides.",
)

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


def _label(target: str, n: int) -> str:
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


def _pair_sentence(c1: str, n1: int, c2: str, n2: int) -> str:
    verb = "is" if n1 == 1 else "are"
    return f"There {verb} {n1} {_label(c1, n1)} and {n2} {_label(c2, n2)}."


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
        answer = _pair_sentence(targets[0], value[0], targets[1], value[1])
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


def _problem_types(problem_types: list[str] | None) -> list[str]:
    problem_types = list(SYNTHETIC_PROBLEM_TYPES) if problem_types is None else list(problem_types)
    unknown = [t for t in problem_types if t not in SYNTHETIC_PROBLEM_TYPES]
    if unknown or not problem_types:
        raise ValueError(f"problem_types={problem_types!r}: each must be one of {list(SYNTHETIC_PROBLEM_TYPES)}.")
    return problem_types


def _draw_problem(
    seed: int, index: int, stream: str, problem_types: list[str], image_size: int, text_only_fraction: float
) -> tuple[SyntheticProblem, random.Random]:
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
    problem_types = _problem_types(problem_types)
    rows = []
    for index in range(start_index, start_index + num_rows):
        problem, _ = _draw_problem(seed, index, "task", problem_types, image_size, text_only_fraction)
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


# --- Responses with sound and flawed reasoning -------------------------------------------------------------------


def _tally_steps(
    problem: SyntheticProblem, error_at: int | None, delta: int, propagate: bool
) -> tuple[list[tuple[str, bool]], object]:
    """
    Steps `(text, is_correct)` that go through the shapes in reading order, keeping one running count per target.

    With `error_at`, the count stated at that shape step is off by `delta`; with `propagate`, the reasoning carries
    the wrong count to the end (so the conclusion is wrong too), otherwise it goes on from the true count. A step is
    correct when every number it states is true. Returns the steps and the value the reasoning concludes.
    """
    targets = problem.targets
    true = dict.fromkeys(targets, 0)
    claimed = dict.fromkeys(targets, 0)
    steps = []
    for i, shape in enumerate(problem.shapes):
        matched = [t for t in targets if t == "shape" or t in (shape.color, shape.kind)]
        for t in matched:
            true[t] += 1
            claimed[t] += 1
        stated = dict(claimed)
        mentioned = matched
        if error_at == i:
            # A counted shape is miscounted by `delta`; a shape that should not count is counted anyway.
            mentioned = matched or [targets[0]]
            stated[mentioned[0]] += delta if matched else 1
            if propagate:
                claimed = dict(stated)
        text = f"Shape {i + 1} is a {shape.color} {shape.kind}"
        if mentioned:
            text += ", so the count of " + " and of ".join(f"{_label(t, 2)} is now {stated[t]}" for t in mentioned)
        else:
            text += ", which I do not count"
        steps.append((text + ".", all(stated[t] == true[t] for t in mentioned)))

    counts_right = claimed == true
    kind = problem.kind
    if kind in ("count_color", "count_kind", "count_total"):
        t = targets[0]
        value = claimed[t]
        steps.append((f"So there are {value} {_label(t, value)}.", counts_right))
    elif kind in ("sum_colors", "diff_colors", "count_pair"):
        n1, n2 = claimed[targets[0]], claimed[targets[1]]
        if kind == "sum_colors":
            value = n1 + n2
            steps.append((f"Adding them up: {n1} + {n2} = {value}.", counts_right))
        elif kind == "diff_colors":
            value = n1 - n2
            steps.append((f"The difference is {n1} - {n2} = {value}.", counts_right))
        else:
            value = (n1, n2)
            steps.append(
                (f"So there are {n1} {_label(targets[0], n1)} and {n2} {_label(targets[1], n2)}.", counts_right)
            )
    else:  # most_color, most_kind
        best = max(claimed.values())
        value = next(t for t in targets if claimed[t] == best)
        listing = ", ".join(f"{_label(t, claimed[t])}: {claimed[t]}" for t in targets)
        steps.append((f"Comparing the counts ({listing}), the most frequent is {value}.", counts_right))
    return steps, value


def _ocr_steps(problem: SyntheticProblem, error_at: int | None, propagate: bool) -> tuple[list[tuple[str, bool]], str]:
    text = problem.value
    read = list(text)
    steps = []
    for i, ch in enumerate(text):
        seen = ch
        if error_at == i:
            seen = _misread(ch)
            if propagate:
                read[i] = seen
        steps.append((f"Character {i + 1} is '{seen}'.", seen == ch))
    value = "".join(read)
    steps.append((f"Together the characters read '{value}'.", value == text))
    return steps, value


def _misread(ch: str) -> str:
    look_alike = {"0": "8", "1": "7", "3": "8", "5": "6", "6": "5", "7": "1", "8": "3", "9": "4", "a": "o", "e": "c"}
    if ch in look_alike:
        return look_alike[ch]
    if ch.isdigit():
        return str((int(ch) + 1) % 10)
    return "x" if ch != "x" else "k"


def _format_answer(problem: SyntheticProblem, value: object) -> str:
    """The answer tag content a reasoning that concluded `value` writes."""
    if problem.kind == "count_pair":
        return _pair_sentence(problem.targets[0], value[0], problem.targets[1], value[1])
    if problem.options:
        for option in problem.options:
            letter, _, text = option.partition(". ")
            if text == str(value):
                return letter
        return None  # the concluded value is not among the options
    return str(value)


def _wrong_answer(rng: random.Random, problem: SyntheticProblem) -> str:
    if problem.options:
        return rng.choice([o.partition(". ")[0] for o in problem.options if o.partition(". ")[0] != problem.answer])
    if problem.kind == "ocr":
        i = rng.randrange(len(problem.value))
        return problem.value[:i] + _misread(problem.value[i]) + problem.value[i + 1 :]
    if problem.kind in ("most_color", "most_kind"):
        pool = list(COLORS) if problem.kind == "most_color" else list(SHAPES)
        return rng.choice([c for c in pool if c != problem.value])
    if problem.kind == "count_pair":
        n1, n2 = problem.value
        return _pair_sentence(problem.targets[0], n1 + 1, problem.targets[1], n2)
    return str(problem.value + rng.choice([-1, 1]) if problem.value > 0 else problem.value + 1)


def score_steps(num_correct: int, num_steps: int) -> float:
    """
    The fraction of correct steps, rounded to the nearest tenth with halves rounded up (exact integer arithmetic).

    Args:
        num_correct (`int`):
            Steps that are right, the final answer included.
        num_steps (`int`):
            All steps, the final answer included.

    Returns:
        `float`: A score in {0.0, 0.1, ..., 1.0}.
    """
    if num_steps <= 0 or not 0 <= num_correct <= num_steps:
        raise ValueError(f"Need 0 <= num_correct <= num_steps and num_steps > 0, got {num_correct}/{num_steps}.")
    return ((20 * num_correct + num_steps) // (2 * num_steps)) / 10


def write_response(problem: SyntheticProblem, rng: random.Random, flaw: str | None = None) -> tuple[str, float]:
    """
    Write a `<think>...</think><answer>...</answer>` response to a problem and score its reasoning.

    Args:
        problem ([`SyntheticProblem`]):
            The problem to answer.
        rng (`random.Random`):
            Chooses where a flaw goes and what filler says.
        flaw (`str` or `None`, *optional*, defaults to `None`):
            `None` for sound reasoning, or one of `"miscount"` (a count or character goes wrong and the error is
            carried to the answer), `"slip"` (one step states a wrong number or character, the next steps go on from
            the right one), `"filler"` (1-3 irrelevant sentences), `"repetition"` (one step said 2-3 extra times),
            `"wrong_answer"` (sound steps, a different final answer), `"guess"` (no reasoning, a random answer).

    Returns:
        `tuple[str, float]`: The response and its score, the fraction of correct steps (the final answer counts as
        one step; filler sentences and repeated copies count as wrong steps), rounded to the nearest tenth.
    """
    if flaw is not None and flaw not in FLAWS:
        raise ValueError(f"Unknown flaw {flaw!r}: expected None or one of {list(FLAWS)}.")
    if flaw == "guess":
        steps = [("I will just guess.", False)]
        answer = rng.choice([problem.answer, _wrong_answer(rng, problem)])
    else:
        error_at = None
        if flaw in ("miscount", "slip"):
            if problem.kind == "ocr":
                error_at = rng.randrange(len(problem.value))
            else:
                # Prefer a shape that counts; when none does (a count of 0), a non-matching shape gets counted.
                counted = [i for i, s in enumerate(problem.shapes) if _counts_shape(problem, s)]
                error_at = rng.choice(counted or list(range(len(problem.shapes))))
        delta = rng.choice([-1, 1])
        if problem.kind == "ocr":
            steps, value = _ocr_steps(problem, error_at, propagate=flaw == "miscount")
        else:
            steps, value = _tally_steps(problem, error_at, delta, propagate=flaw == "miscount")
        answer = _format_answer(problem, value)
        if answer is None:  # a miscount led outside the options: the reasoning settles on a wrong option
            answer = _wrong_answer(rng, problem)
        if flaw == "wrong_answer":
            answer = _wrong_answer(rng, problem)
        elif flaw == "filler":
            for _ in range(rng.randint(1, 3)):
                steps.insert(rng.randint(0, len(steps)), (rng.choice(FILLER_SENTENCES), False))
        elif flaw == "repetition":
            i = rng.randrange(len(steps))
            for _ in range(rng.randint(2, 3)):
                steps.insert(i + 1, (steps[i][0], False))
    steps.append((answer, answer == problem.answer))
    num_correct = sum(ok for _, ok in steps)
    think = "\n".join(text for text, _ in steps[:-1])
    return f"<think>\n{think}\n</think>\n<answer>{answer}</answer>", score_steps(num_correct, len(steps))


def _counts_shape(problem: SyntheticProblem, shape: Shape) -> bool:
    return any(t == "shape" or t in (shape.color, shape.kind) for t in problem.targets)


def policy_sft_row(problem: SyntheticProblem, response: str) -> dict:
    """One prompt-completion row for supervised fine-tuning of the policy: the policy prompt of `problem`, `response` as
    the assistant's turn, and the image (a policy warm start before GRPO)."""
    return {
        "prompt": build_prompt(problem.problem, problem.problem_type, problem.options),
        "completion": [{"role": "assistant", "content": response}],
        "image": problem.image,
    }


def judge_row(problem: SyntheticProblem, response: str, score: float) -> dict:
    """One row of judge data (the columns of `JUDGE_DATA_FEATURES`): the problem's question and image, a response to it
    and the response's score."""
    return {
        "question": format_question(problem.problem, problem.options),
        "image": problem.image,
        "response": response,
        "score": score,
        "problem_type": problem.problem_type,
    }


def make_thinking_dataset(
    num_rows: int,
    seed: int = 0,
    image_size: int = 56,
    problem_types: list[str] | None = None,
    flawed_fraction: float = 0.5,
    text_only_fraction: float = 0.0,
    start_index: int = 0,
) -> Dataset:
    """
    Generate judge training data from the synthetic task: responses with sound or flawed reasoning and their scores.

    Args:
        num_rows (`int`):
            Number of rows.
        seed (`int`, *optional*, defaults to `0`):
            Row `i` is a function of `(seed, i)` only.
        image_size (`int`, *optional*, defaults to `56`):
            Width and height of the images.
        problem_types (`list[str]` or `None`, *optional*, defaults to `None`):
            Problem types to cycle through, in order; all five when `None`.
        flawed_fraction (`float`, *optional*, defaults to `0.5`):
            Probability that a response has a flaw (drawn uniformly from `FLAWS`).
        text_only_fraction (`float`, *optional*, defaults to `0.0`):
            Probability that a non-OCR question describes its scene in words and has no image.
        start_index (`int`, *optional*, defaults to `0`):
            Index of the first row, as in [`make_synthetic_dataset`].

    Returns:
        [`~datasets.Dataset`]: Columns `question` (the problem and its options, without instructions), `image` (PIL
        image or `None`), `response`, `score` (in {0.0, 0.1, ..., 1.0}) and `problem_type`.
    """
    if num_rows < 0 or start_index < 0:
        raise ValueError(f"num_rows and start_index must be >= 0, got {num_rows} and {start_index}.")
    if not 0.0 <= flawed_fraction <= 1.0:
        raise ValueError(f"flawed_fraction must be in [0, 1], got {flawed_fraction}.")
    if not 0.0 <= text_only_fraction <= 1.0:
        raise ValueError(f"text_only_fraction must be in [0, 1], got {text_only_fraction}.")
    problem_types = _problem_types(problem_types)
    rows = []
    for index in range(start_index, start_index + num_rows):
        problem, rng = _draw_problem(seed, index, "thinking", problem_types, image_size, text_only_fraction)
        flaw = rng.choice(FLAWS) if rng.random() < flawed_fraction else None
        rows.append(judge_row(problem, *write_response(problem, rng, flaw)))
    return Dataset.from_list(rows, features=JUDGE_DATA_FEATURES)
