"""The judge prompt template: [`JudgePrompt`] with its placeholders, this project's prompt and template files."""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from pathlib import Path

import yaml

JUDGE_SYSTEM_PROMPT = (
    "You grade the reasoning in a model's response to a question. The question may come with an image. Judge the "
    "thinking that leads to the answer, not only whether the final answer is right, using five criteria:\n"
    "1. Logical soundness: every step follows from the question, the image and the steps before it.\n"
    "2. Correct reasoning: the facts, readings of the image and calculations used along the way are right.\n"
    "3. Error identification: mistakes are noticed and corrected instead of being carried forward.\n"
    "4. Language consistency: the response keeps to one language and says what it means.\n"
    "5. Redundancy: no needless repetition, filler or detours that add nothing.\n"
    "Give one overall score from 0 to 1 in steps of 0.1 (0, 0.1, 0.2, ..., 1.0): 1.0 for flawless reasoning, 0 for "
    "reasoning of no value. Reply with the score only, written as <answer>score</answer>, for example "
    "<answer>0.7</answer>."
)

JUDGE_USER_TEMPLATE = "Question:\n{question}\n\nResponse:\n{response}\n\nScore the reasoning in this response."

# The placeholders of a judge prompt template: the item's question and response, and where its image goes.
JUDGE_PROMPT_PLACEHOLDERS = ("question", "response", "image")
JUDGE_PROMPT_KEYS = ("system", "user")


def _parse_template(template: str, where: str, allowed: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """(literal text, placeholder or None) pieces of a `str.format`-style template, checked against `allowed`."""
    hint = (
        "The placeholders are {question}, {response} and {image} (user message only), without format specs; write a "
        "literal brace as {{ or }}."
    )
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:  # a lone brace
        raise ValueError(f"{where} is not a valid template ({err}). {hint}") from err
    pieces: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None:
            written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            if name not in allowed or spec or conversion:
                raise ValueError(f"{where} has the unknown placeholder {written}. {hint}")
        pieces.append((literal, name))
    return pieces


@dataclass(frozen=True)
class JudgePrompt:
    r"""
    The judge's prompt as a template: a system message and a user message with placeholders for the item.

    Placeholders are written as in `str.format`, but only these names are substituted (nothing is evaluated):

    - `{question}`: the question ([`judge_inputs`]: the bare question, options included);
    - `{response}`: the full response to judge, reasoning and answer;
    - `{image}` (user message only, at most once): where the image block goes. Without it the image comes before the
      text of the user message. For a text-only item it is left out and the text around it is joined.

    `{question}` and `{response}` must each appear in the system or the user message. A literal brace is written
    `{{` or `}}`. An empty or missing system message means no system turn (the chat template may then add its
    default one, as it did when such a judge was trained).

    The default is this project's prompt ([`JUDGE_SYSTEM_PROMPT`] and [`JUDGE_USER_TEMPLATE`]); a judge trained
    elsewhere (e.g. a released thinking reward model) is given the prompt it was trained with through a template file
    ([`JudgePrompt.from_file`]).

    Args:
        system (`str` or `None`, *optional*, defaults to `JUDGE_SYSTEM_PROMPT`):
            The system message template; `None` or `""` for no system turn.
        user (`str`, *optional*, defaults to `JUDGE_USER_TEMPLATE`):
            The user message template.
        source (`str`, *optional*, defaults to `"JudgePrompt"`):
            Where the template comes from (its file), named in error messages.

    Example:

    ```python
    >>> prompt = JudgePrompt(system=None, user="Question: {question}\n{image}\nAnswer: {response}")
    >>> prompt.render("How many?", "3")
    (None, 'Question: How many?\n', '\nAnswer: 3')
    ```
    """

    system: str | None = JUDGE_SYSTEM_PROMPT
    user: str = JUDGE_USER_TEMPLATE
    source: str = field(default="JudgePrompt", compare=False)
    _system_pieces: list = field(init=False, repr=False, compare=False)
    _user_pieces: list = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        for key in JUDGE_PROMPT_KEYS:
            value = getattr(self, key)
            if not (isinstance(value, str) or (key == "system" and value is None)):
                raise ValueError(f"{self.source}: '{key}' must be a string, got {type(value).__name__}.")
        system_pieces = _parse_template(
            self.system or "", f"{self.source}: the system message", ("question", "response")
        )
        user_pieces = _parse_template(self.user, f"{self.source}: the user message", JUDGE_PROMPT_PLACEHOLDERS)
        names = [name for _, name in system_pieces + user_pieces if name is not None]
        for required in ("question", "response"):
            if required not in names:
                raise ValueError(
                    f"{self.source}: the template has no {{{required}}} placeholder, so the judge would never see the "
                    f"{required}. Add {{{required}}} to the user (or system) message."
                )
        if names.count("image") > 1:
            raise ValueError(
                f"{self.source}: the user message has {{image}} {names.count('image')} times; the judge "
                "reads one image per item, so write it once."
            )
        object.__setattr__(self, "_system_pieces", system_pieces)
        object.__setattr__(self, "_user_pieces", user_pieces)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> JudgePrompt:
        """
        Loads a template file: YAML (or JSON) with the keys `system` (optional) and `user`, e.g.

        ```yaml
        system: |-
          You grade the reasoning in a model's response to a question.
        user: |-
          Question:
          {question}

          Response:
          {response}
        ```

        (`|-` keeps the lines as written without a final newline.) The file is checked at once: an unknown key, an
        unknown or missing placeholder raises a `ValueError` naming the file.

        Args:
            path (`str` or `os.PathLike`):
                The template file.

        Returns:
            [`JudgePrompt`]: The template, with `source` the file's path.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"Judge prompt template {path} does not exist. Give a YAML file with 'system' and 'user' keys "
                "(recipes/judge_prompts/sophia_trl.yaml is an example), or leave judge_prompt_template unset for the "
                "default prompt."
            )
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ValueError(f"Judge prompt template {path} is not valid YAML: {err}") from err
        if not isinstance(content, dict):
            raise ValueError(
                f"Judge prompt template {path} must hold a mapping with the keys 'system' and 'user', got "
                f"{type(content).__name__}."
            )
        unknown = sorted(str(key) for key in content if key not in JUDGE_PROMPT_KEYS)
        if unknown:
            raise ValueError(
                f"Judge prompt template {path} has the unknown key(s) {unknown}; a template has 'system' (optional) and "
                "'user'."
            )
        if "user" not in content:
            raise ValueError(f"Judge prompt template {path} has no 'user' key: the user message template is required.")
        return cls(system=content.get("system"), user=content["user"], source=str(path))

    @property
    def image_first(self) -> bool:
        """Whether the image block comes before the user text (the template has no `{image}`), as TRL places it."""
        return all(name != "image" for _, name in self._user_pieces)

    @property
    def response_last(self) -> bool:
        """Whether the response comes after the question and the image, so a group's prompts share those as a prefix
        (what `share_prefix` of the local judges needs)."""
        image = ["image"] if self.image_first else []
        names = [n for _, n in self._system_pieces if n] + image + [n for _, n in self._user_pieces if n]
        return names.index("response") > max(names.index(n) for n in names if n != "response")

    def render(self, question: str, response: str) -> tuple[str | None, str, str]:
        """
        Fills in the template for one item.

        Args:
            question (`str`):
                The question.
            response (`str`):
                The response to judge.

        Returns:
            `tuple[str | None, str, str]`: The system message (`None` for no system turn) and the user message's text
            before and after the image (all of it after the image when the template has no `{image}`).
        """
        values = {"question": question, "response": response}

        def fill(pieces: list[tuple[str, str | None]]) -> list[str]:
            parts = [""]
            for literal, name in pieces:
                parts[-1] += literal
                if name == "image":
                    parts.append("")
                elif name is not None:
                    parts[-1] += values[name]
            return parts

        system = "".join(fill(self._system_pieces)) or None
        user = fill(self._user_pieces)
        before, after = ("", user[0]) if len(user) == 1 else (user[0], user[1])
        return system, before, after


DEFAULT_JUDGE_PROMPT = JudgePrompt()


def load_judge_prompt(path: str | os.PathLike | None) -> JudgePrompt:
    """The judge prompt of a template file ([`JudgePrompt.from_file`]), or this project's prompt when `path` is
    `None` or empty."""
    return JudgePrompt.from_file(path) if path else DEFAULT_JUDGE_PROMPT
