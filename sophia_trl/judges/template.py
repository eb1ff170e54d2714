"""The judge prompt template: [`JudgePrompt`] with its placeholders, this project's prompt and template files."""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..release import JUDGE_FILE, RELEASE_COMMIT, RELEASE_REPO, fetch_release_file, read_judge_prompt
from .scores import SCORE_PARSERS, parse_score_with

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

# The placeholders of a judge prompt template: the item's question (bare, or the policy's whole prompt) and response,
# and where its images go.
JUDGE_PROMPT_PLACEHOLDERS = ("question", "policy_prompt", "response", "image")
JUDGE_PROMPT_KEYS = ("system", "user", "policy_prompt_image_prefix", "response_normalization", "score_parser")
# How the response is changed before it fills {response}: not at all, or with every `$` removed (as the released
# SophiaVL-R1 reward manager does).
RESPONSE_NORMALIZATIONS = (None, "remove_dollars")
# The named templates `load_judge_prompt` resolves besides files: the released SophiaVL-R1 judge prompt, read from the
# release (`sophia_trl.judges.release_prompt`).
NAMED_JUDGE_PROMPTS = ("sophiavl-r1",)


def _parse_template(template: str, where: str, allowed: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """(literal text, placeholder or None) pieces of a `str.format`-style template, checked against `allowed`."""
    hint = (
        "The placeholders are {question} (or {policy_prompt}), {response} and {image} (user message only), without "
        "format specs; write a literal brace as {{ or }}."
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
    - `{policy_prompt}` (instead of `{question}`): the policy's whole prompt as its tokenizer decodes it without special
      tokens ([`~sophia_trl.judges.decoded_policy_prompt`]: chat roles, system prompt, question and instructions), as
      the released SophiaVL-R1 reward code sends it; for a judge-data row, its `question` column. For an item with an
      image, `policy_prompt_image_prefix` is put before it unless it already holds the image tag (the prefix
      stripped);
    - `{response}`: the full response to judge, reasoning and answer (changed by `response_normalization` first);
    - `{image}` (user message only, at most once): where the image blocks go (all of the item's images, in order).
      Without them the images come before the text of the user message. For a text-only item it is left out and the
      text around it is joined.

    `{question}` (or `{policy_prompt}`) and `{response}` must each appear in the system or the user message. A
    literal brace is written `{{` or `}}`. An empty or missing system message means no system turn (the chat template
    may then add its default one, as it did when such a judge was trained).

    The default is this project's prompt ([`JUDGE_SYSTEM_PROMPT`] and [`JUDGE_USER_TEMPLATE`]); a judge trained
    elsewhere (e.g. a released thinking reward model) is given the prompt it was trained with through a template file
    ([`JudgePrompt.from_file`]) or by name (`"sophiavl-r1"`, [`load_judge_prompt`]).

    Args:
        system (`str` or `None`, *optional*, defaults to `JUDGE_SYSTEM_PROMPT`):
            The system message template; `None` or `""` for no system turn.
        user (`str`, *optional*, defaults to `JUDGE_USER_TEMPLATE`):
            The user message template.
        policy_prompt_image_prefix (`str` or `None`, *optional*, defaults to `None`):
            With `{policy_prompt}`: the text put before the policy prompt of an item with an image (the released code
            puts `"<image> "`).
        response_normalization (`str` or `None`, *optional*, defaults to `None`):
            `"remove_dollars"` removes every `$` from the response before it fills `{response}` (as the released
            reward code does); `None` leaves it as written.
        score_parser (`str`, *optional*, defaults to `"sophia_trl"`):
            How the judge's written reply is read ([`~sophia_trl.judges.SCORE_PARSERS`]): `"sophia_trl"`
            ([`~sophia_trl.judges.parse_score`], `None` when the reply holds no score) or `"sophiavl-r1"` (the released
            extractor chain, 0 when it finds nothing, [`~sophia_trl.judges.parse_score_sophiavl_r1`]).
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
    policy_prompt_image_prefix: str | None = None
    response_normalization: str | None = None
    score_parser: str = "sophia_trl"
    source: str = field(default="JudgePrompt", compare=False)
    _system_pieces: list = field(init=False, repr=False, compare=False)
    _user_pieces: list = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        for key in JUDGE_PROMPT_KEYS[:3]:
            value = getattr(self, key)
            if not (isinstance(value, str) or (key != "user" and value is None)):
                raise ValueError(f"{self.source}: '{key}' must be a string, got {type(value).__name__}.")
        if self.response_normalization not in RESPONSE_NORMALIZATIONS:
            raise ValueError(
                f"{self.source}: response_normalization={self.response_normalization!r} is not one of "
                f"{list(RESPONSE_NORMALIZATIONS)}."
            )
        if self.score_parser not in SCORE_PARSERS:
            raise ValueError(
                f"{self.source}: score_parser={self.score_parser!r} is not one of {list(SCORE_PARSERS)}: "
                "'sophia_trl' for this project's judges, 'sophiavl-r1' for the released judge's extractor chain."
            )
        system_pieces = _parse_template(
            self.system or "", f"{self.source}: the system message", ("question", "policy_prompt", "response")
        )
        user_pieces = _parse_template(self.user, f"{self.source}: the user message", JUDGE_PROMPT_PLACEHOLDERS)
        names = [name for _, name in system_pieces + user_pieces if name is not None]
        if "question" in names and "policy_prompt" in names:
            raise ValueError(
                f"{self.source}: the template has both {{question}} and {{policy_prompt}}; the judge reads one of them "
                "(the bare question, or the policy's whole prompt). Keep one."
            )
        for required in ("policy_prompt" if "policy_prompt" in names else "question", "response"):
            if required not in names:
                raise ValueError(
                    f"{self.source}: the template has no {{{required}}} placeholder, so the judge would never see the "
                    f"{required}. Add {{{required}}} to the user (or system) message."
                )
        if names.count("image") > 1:
            raise ValueError(
                f"{self.source}: the user message has {{image}} {names.count('image')} times; it marks where "
                "all of an item's images go, so write it once."
            )
        object.__setattr__(self, "_system_pieces", system_pieces)
        object.__setattr__(self, "_user_pieces", user_pieces)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> JudgePrompt:
        """
        Loads a template file: YAML (or JSON) with the keys `system` (optional) and `user`, and optionally
        `policy_prompt_image_prefix`, `response_normalization` and `score_parser` (the arguments of the same names),
        e.g.

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
                f"Judge prompt template {path} has the unknown key(s) {unknown}; a template has 'user', and optionally "
                f"{list(JUDGE_PROMPT_KEYS[:1] + JUDGE_PROMPT_KEYS[2:])}."
            )
        if "user" not in content:
            raise ValueError(f"Judge prompt template {path} has no 'user' key: the user message template is required.")
        return cls(**{key: content[key] for key in JUDGE_PROMPT_KEYS if key in content}, source=str(path))

    def to_dict(self) -> dict[str, str | None]:
        """The template file's content ([`JudgePrompt.from_file`]): `system`, `user` and the settings that differ
        from their defaults."""
        content = {"system": self.system, "user": self.user}
        for key in JUDGE_PROMPT_KEYS[2:]:
            value = getattr(self, key)
            if value != type(self).__dataclass_fields__[key].default:
                content[key] = value
        return content

    @property
    def reads_policy_prompt(self) -> bool:
        """Whether the question slot is `{policy_prompt}`: the caller passes the policy's decoded prompt as question."""
        return any(name == "policy_prompt" for _, name in self._system_pieces + self._user_pieces)

    def parse_score(self, text: str | None) -> float | None:
        """The score in the judge's written reply, read with this template's `score_parser`."""
        return parse_score_with(self.score_parser, text)

    @property
    def image_first(self) -> bool:
        """Whether the image blocks come before the user text (the template has no `{image}`), as TRL places them."""
        return all(name != "image" for _, name in self._user_pieces)

    @property
    def response_last(self) -> bool:
        """Whether the response comes after the question and the image, so a group's prompts share those as a prefix
        (what `share_prefix` of the local judges needs)."""
        image = ["image"] if self.image_first else []
        names = [n for _, n in self._system_pieces if n] + image + [n for _, n in self._user_pieces if n]
        return names.index("response") > max(names.index(n) for n in names if n != "response")

    def render(self, question: str, response: str, has_image: bool = False) -> tuple[str | None, str, str]:
        """
        Fills in the template for one item.

        Args:
            question (`str`):
                The question (the policy's decoded prompt for a `{policy_prompt}` template).
            response (`str`):
                The response to judge.
            has_image (`bool`, *optional*, defaults to `False`):
                Whether the item has an image (for `policy_prompt_image_prefix`).

        Returns:
            `tuple[str | None, str, str]`: The system message (`None` for no system turn) and the user message's text
            before and after the image (all of it after the image when the template has no `{image}`).
        """
        prefix = self.policy_prompt_image_prefix
        policy_prompt = question
        if has_image and prefix and prefix.strip() not in question:
            policy_prompt = prefix + question
        if self.response_normalization == "remove_dollars":
            response = response.replace("$", "")
        values = {"question": question, "policy_prompt": policy_prompt, "response": response}

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


def release_judge_prompt(
    source: str | os.PathLike | None = None, allow_checksum_mismatch: bool | None = None
) -> JudgePrompt:
    """
    The released SophiaVL-R1 judge prompt (the named template `"sophiavl-r1"`), read from `get_process_reward` in
    `verl/workers/reward/custom.py` of the release ([`~sophia_trl.release.fetch_release_file`],
    [`~sophia_trl.release.read_judge_prompt`]).

    The template reproduces the released request: its system turn; one user message holding the released text with
    `{policy_prompt}` (prefixed as the release does for an image row) and `{response}` (with `$` removed) in its
    slots, and the image after the text; its replies read by the released extractor chain.

    Args:
        source (`str`, `os.PathLike` or `None`, *optional*, defaults to `None`):
            A checkout of the release or the file; `$SOPHIA_TRL_RELEASE_SOURCE`, the cache or a download when `None`.
        allow_checksum_mismatch (`bool` or `None`, *optional*, defaults to `None`):
            Read a local file that is not the release's version (see `fetch_release_file`).

    Returns:
        [`JudgePrompt`]: The template.
    """
    release = read_judge_prompt(
        fetch_release_file(JUDGE_FILE, source, allow_checksum_mismatch=allow_checksum_mismatch)
    )

    def escaped(text: str) -> str:
        return text.replace("{", "{{").replace("}", "}}")

    user = "".join(escaped(text) + ("{" + slot + "}" if slot else "") for text, slot in release.pieces)
    return JudgePrompt(
        system=release.system,
        user=user + "{image}",  # the image block is appended after the text
        policy_prompt_image_prefix=release.image_prefix,
        response_normalization="remove_dollars" if release.removes_dollars else None,
        score_parser="sophiavl-r1",
        source=f"sophiavl-r1 ({RELEASE_REPO}@{RELEASE_COMMIT[:8]} {JUDGE_FILE})",
    )


def load_judge_prompt(path: str | os.PathLike | None) -> JudgePrompt:
    """The judge prompt of a template file ([`JudgePrompt.from_file`]) or of a name in [`NAMED_JUDGE_PROMPTS`]
    (`"sophiavl-r1"`: the released judge's prompt, read from the release, [`release_judge_prompt`]), or this project's
    prompt when `path` is `None` or empty."""
    if path in NAMED_JUDGE_PROMPTS:
        return release_judge_prompt()
    return JudgePrompt.from_file(path) if path else DEFAULT_JUDGE_PROMPT
