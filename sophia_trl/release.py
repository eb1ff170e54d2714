"""The released SophiaVL-R1 code, read as data: its files fetched and checked, its prompts read with `ast`.

Two files of github.com/kxfan2002/SophiaVL-R1 at [`RELEASE_COMMIT`] hold the prompts of the released run:

- `verl/workers/reward/custom.py`: `get_process_reward` builds the thinking reward model's request (its system turn,
  one f-string around the policy's prompt and the response, the image after the text), and `CustomRewardManager`
  removes `$` from the response before the call;
- `verl/utils/dataset.py`: `QUESTION_TEMPLATE` and `TYPE_TEMPLATE` build the policy's prompt, with the options of a
  multiple-choice question joined onto the question.

[`fetch_release_file`] takes a file from a local checkout (or the file itself) or downloads it at that commit, and
checks it against its sha256 before anything reads it; [`read_judge_prompt`] and [`read_policy_prompt`] read the
prompts from the source with `ast` (nothing of the file is run). The wording is never copied into this project: it is
read from the release wherever it is used.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import os
import string
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

RELEASE_REPO = "kxfan2002/SophiaVL-R1"
RELEASE_COMMIT = "a8184947bf3ba215c511225a739789bdfce44930"
JUDGE_FILE = "verl/workers/reward/custom.py"
POLICY_FILE = "verl/utils/dataset.py"
# sha256 of each file at RELEASE_COMMIT: what is read is exactly what the released run used.
RELEASE_SHA256 = {
    JUDGE_FILE: "d58f974335099ec66002426c40f4d4edd3ca148b7f3ebb4b85138b980b87acbb",
    POLICY_FILE: "1148bec277436a6c1c34d229624adc8194be128cef9f9c75b086f13724b83fd4",
}

# Environment variables: a local checkout (or folder holding the files) to read instead of downloading, the download's
# base URL (`<base>/<commit>/<path>`), the cache folder, and an explicit acceptance of files that differ from the
# release's checksums (a user who knowingly reads another version).
SOURCE_ENV = "SOPHIA_TRL_RELEASE_SOURCE"
BASE_URL_ENV = "SOPHIA_TRL_RELEASE_BASE_URL"
CACHE_ENV = "SOPHIA_TRL_CACHE"
ALLOW_MISMATCH_ENV = "SOPHIA_TRL_RELEASE_ALLOW_CHECKSUM_MISMATCH"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{RELEASE_REPO}"
DOWNLOAD_TIMEOUT = 30.0  # seconds per attempt
DOWNLOAD_ATTEMPTS = 3


class ReleaseFileError(ValueError):
    """A released file that cannot be had or read: missing, unreachable, another version, or not the expected code."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def default_cache_dir() -> Path:
    """`$SOPHIA_TRL_CACHE`, else `$XDG_CACHE_HOME/sophia_trl` (`~/.cache/sophia_trl`)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "sophia_trl"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check(data: bytes, path: str, where: str, allow_checksum_mismatch: bool) -> None:
    expected, got = RELEASE_SHA256[path], sha256_of(data)
    if got == expected:
        return
    message = (
        f"{where} is not {path} of {RELEASE_REPO} at commit {RELEASE_COMMIT}: its sha256 is {got}, the release's is "
        f"{expected}."
    )
    if allow_checksum_mismatch:
        logger.warning("%s Read anyway, as asked (allow_checksum_mismatch).", message)
        return
    raise ReleaseFileError(
        f"{message} Give the file of that commit (`git checkout {RELEASE_COMMIT}` in the checkout), or, to read this "
        f"version knowingly, pass --allow_checksum_mismatch (or set {ALLOW_MISMATCH_ENV}=1)."
    )


def _download(url: str) -> bytes:
    """The body at `url`, with a timeout per attempt and bounded retries (client errors such as 404 are final)."""
    last: Exception | None = None
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as reply:
                return reply.read()
        except urllib.error.HTTPError as err:
            if 400 <= err.code < 500 and err.code != 429:
                raise ReleaseFileError(f"Downloading {url} failed: HTTP {err.code} {err.reason}.") from err
            last = err
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            last = err
        if attempt < DOWNLOAD_ATTEMPTS:
            logger.warning("Downloading %s failed (%s); attempt %d of %d.", url, last, attempt + 1, DOWNLOAD_ATTEMPTS)
            time.sleep(attempt)
    raise ReleaseFileError(
        f"Downloading {url} failed {DOWNLOAD_ATTEMPTS} times (last error: {last}). Without network access, give a "
        f"checkout of {RELEASE_REPO} at {RELEASE_COMMIT} (--source DIR, or {SOURCE_ENV}=DIR)."
    )


def fetch_release_file(
    path: str,
    source: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    allow_checksum_mismatch: bool | None = None,
) -> str:
    """
    The text of one released file, checked against its sha256 at [`RELEASE_COMMIT`].

    Where it comes from, in order: `source` (or `$SOPHIA_TRL_RELEASE_SOURCE`), a checkout folder holding `path` or the
    file itself; else the cache (`cache_dir`/release/<commit>/<path>); else a download from
    `https://raw.githubusercontent.com/kxfan2002/SophiaVL-R1/<commit>/<path>` (`$SOPHIA_TRL_RELEASE_BASE_URL` replaces
    the part before the commit), saved to the cache once checked. No download is tried when `HF_HUB_OFFLINE` is set.

    Args:
        path (`str`):
            The file's path in the repository, [`JUDGE_FILE`] or [`POLICY_FILE`].
        source (`str`, `os.PathLike` or `None`, *optional*, defaults to `None`):
            A local checkout of the repository, or the file itself.
        cache_dir (`str`, `os.PathLike` or `None`, *optional*, defaults to `None`):
            The cache folder; [`default_cache_dir`] when `None`.
        allow_checksum_mismatch (`bool` or `None`, *optional*, defaults to `None`):
            Read a local file whose sha256 is not the release's, with a warning (another version, read knowingly).
            `None` reads `$SOPHIA_TRL_RELEASE_ALLOW_CHECKSUM_MISMATCH`. A download must always match.

    Returns:
        `str`: The file's text.

    Raises:
        [`ReleaseFileError`]: The file is missing, cannot be downloaded, or its sha256 is not the release's.
    """
    if path not in RELEASE_SHA256:
        raise ValueError(
            f"{path!r} is not a released file this project reads; expected one of {list(RELEASE_SHA256)}."
        )
    if allow_checksum_mismatch is None:
        allow_checksum_mismatch = _env_flag(ALLOW_MISMATCH_ENV)
    source = source or os.environ.get(SOURCE_ENV) or None
    if source is not None:
        local = Path(source).expanduser()
        file = local / path if local.is_dir() else local
        if not file.is_file():
            raise ReleaseFileError(
                f"{file} does not exist: give a checkout of {RELEASE_REPO} (the folder holding verl/) or the file "
                f"{path} itself."
            )
        data = file.read_bytes()
        _check(data, path, str(file), allow_checksum_mismatch)
        return data.decode("utf-8")

    cached = Path(cache_dir or default_cache_dir()).expanduser() / "release" / RELEASE_COMMIT / path
    if cached.is_file():
        data = cached.read_bytes()
        if sha256_of(data) == RELEASE_SHA256[path]:
            return data.decode("utf-8")
        logger.warning("The cached %s does not match the release's sha256; downloading it again.", cached)
    if _env_flag("HF_HUB_OFFLINE"):
        raise ReleaseFileError(
            f"{path} of {RELEASE_REPO} is not in the cache ({cached}) and HF_HUB_OFFLINE is set. Give a checkout at "
            f"{RELEASE_COMMIT} (--source DIR, or {SOURCE_ENV}=DIR)."
        )
    base = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    url = f"{base.rstrip('/')}/{RELEASE_COMMIT}/{path}"
    logger.info("Downloading %s", url)
    data = _download(url)
    _check(data, path, url, allow_checksum_mismatch=False)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cached.parent, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, cached)  # atomic: a concurrent reader sees the whole file or none
    return data.decode("utf-8")


# ---------------------------------------------------------------------------------------------------------------------
# Reading the prompts with ast
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseJudgePrompt:
    """
    The thinking reward model's request as `get_process_reward` builds it.

    Attributes:
        system (`str`): The system turn's text.
        pieces (`tuple[tuple[str, str | None], ...]`): The user text as (literal text, slot) pieces in order; a slot
            is `"policy_prompt"` (the function's first argument: the policy's decoded prompt) or `"response"` (its
            second: the response), `None` after the last literal.
        image_prefix (`str`): What is put before the policy prompt of a row with an image that does not already hold
            the image tag (`image_prefix.strip()`).
        removes_dollars (`bool`): Whether the reward manager removes `$` from the response before the call.
    """

    system: str
    pieces: tuple[tuple[str, str | None], ...]
    image_prefix: str
    removes_dollars: bool


@dataclass(frozen=True)
class ReleasePolicyPrompt:
    """
    The policy prompt of `RLHFDataset.__getitem__`.

    Attributes:
        question_template (`str`): A `str.format` template with the one field `{Question}`.
        type_templates (`dict[str, str]`): The text appended after it, by problem type.
        options_separator (`str`): What joins a multiple-choice question's options (appended to the question as is).
    """

    question_template: str
    type_templates: dict[str, str]
    options_separator: str


def _shape_error(where: str, what: str) -> ReleaseFileError:
    return ReleaseFileError(
        f"{where}: {what}. This reader knows the code of {RELEASE_REPO} at {RELEASE_COMMIT}; give that version."
    )


def _function(tree: ast.AST, name: str, where: str) -> ast.FunctionDef:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise _shape_error(where, f"no function {name}")


def _assigned(body: list[ast.stmt], target: str) -> ast.expr | None:
    """The value of the first top-level `target = ...` of a block."""
    for stmt in body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == target for t in stmt.targets):
            return stmt.value
    return None


def _dict_field(node: ast.expr, key: str) -> ast.expr | None:
    if not isinstance(node, ast.Dict):
        return None
    for k, v in zip(node.keys, node.values):
        if isinstance(k, ast.Constant) and k.value == key:
            return v
    return None


def _f_string_pieces(node: ast.JoinedStr, slots: dict[str, str], where: str) -> list[tuple[str, str | None]]:
    """An f-string as (literal, slot) pieces, consecutive constants joined (the parser may split them)."""
    pieces: list[tuple[str, str | None]] = [("", None)]
    for value in node.values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            pieces[-1] = (pieces[-1][0] + value.value, None)
        elif (
            isinstance(value, ast.FormattedValue)
            and isinstance(value.value, ast.Name)
            and value.value.id in slots
            and value.conversion == -1
            and value.format_spec is None
        ):
            pieces[-1] = (pieces[-1][0], slots[value.value.id])
            pieces.append(("", None))
        else:
            raise _shape_error(where, f"the judge prompt has an unexpected part at line {value.lineno}")
    return pieces


def read_judge_prompt(source: str, where: str = JUDGE_FILE) -> ReleaseJudgePrompt:
    """
    Reads the thinking reward model's request from the text of `verl/workers/reward/custom.py` (nothing is run).

    From `get_process_reward(prompt_str, reasoning_str, image)`: the f-string assigned to `prompt` (its constants, and
    its two formatted values as the slots `policy_prompt` and `response`), the system turn's text in `messages`, and
    the prefix put before `prompt_str` when there is an image; from the rest of the file, whether the response's `$`
    are removed (`.replace("$", "")`).

    Args:
        source (`str`):
            The file's text.
        where (`str`, *optional*, defaults to `JUDGE_FILE`):
            The file's name in error messages.

    Returns:
        [`ReleaseJudgePrompt`]: What the request is built from.

    Raises:
        [`ReleaseFileError`]: The code does not have the shape of the released function.
    """
    tree = ast.parse(source, filename=where)
    func = _function(tree, "get_process_reward", where)
    args = [a.arg for a in func.args.args]
    if len(args) != 3:
        raise _shape_error(where, f"get_process_reward takes {args}, not (prompt, response, image)")
    slots = {args[0]: "policy_prompt", args[1]: "response"}

    prompt = _assigned(func.body, "prompt")
    if not isinstance(prompt, ast.JoinedStr):
        raise _shape_error(where, "get_process_reward assigns no f-string to prompt")
    pieces = _f_string_pieces(prompt, slots, where)
    if sorted(slot for _, slot in pieces if slot) != ["policy_prompt", "response"]:
        raise _shape_error(where, "the judge prompt does not hold the prompt and the response once each")

    messages = _assigned(func.body, "messages")
    turns = messages.elts if isinstance(messages, ast.List) else []
    roles = [_dict_field(turn, "role") for turn in turns]
    if [getattr(r, "value", None) for r in roles] != ["system", "user"]:
        raise _shape_error(where, "get_process_reward's messages are not a system turn and a user turn")
    system = _dict_field(turns[0], "content")
    user = _dict_field(turns[1], "content")
    blocks = user.elts if isinstance(user, ast.List) else []
    text = _dict_field(blocks[0], "text") if len(blocks) == 1 else None
    if not (isinstance(system, ast.Constant) and isinstance(system.value, str)):
        raise _shape_error(where, "the system turn is not a string")
    if not (isinstance(text, ast.Name) and text.id == "prompt"):
        raise _shape_error(where, "the user turn is not one text block holding prompt")

    # `if image is not None and "<image>" not in prompt_str: prompt_str = f"<image> {prompt_str}"`
    image_prefix = None
    for stmt in func.body:
        value = _assigned(stmt.body, args[0]) if isinstance(stmt, ast.If) else None
        if isinstance(value, ast.JoinedStr) and len(value.values) == 2 and isinstance(value.values[0], ast.Constant):
            image_prefix = value.values[0].value
    if image_prefix is None:
        raise _shape_error(where, "get_process_reward does not prefix the prompt of an image row")

    removes_dollars = any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "replace"
        and [getattr(a, "value", None) for a in node.args] == ["$", ""]
        for node in ast.walk(tree)
    )
    return ReleaseJudgePrompt(system.value, tuple(pieces), image_prefix, removes_dollars)


def read_policy_prompt(source: str, where: str = POLICY_FILE) -> ReleasePolicyPrompt:
    """
    Reads the policy prompt from the text of `verl/utils/dataset.py` (nothing is run): the module-level
    `QUESTION_TEMPLATE` and `TYPE_TEMPLATE`, and the separator `RLHFDataset.__getitem__` joins the options with.

    Args:
        source (`str`):
            The file's text.
        where (`str`, *optional*, defaults to `POLICY_FILE`):
            The file's name in error messages.

    Returns:
        [`ReleasePolicyPrompt`]: The templates.

    Raises:
        [`ReleaseFileError`]: The code does not have the shape of the released module.
    """
    tree = ast.parse(source, filename=where)
    question = _assigned(tree.body, "QUESTION_TEMPLATE")
    if not (isinstance(question, ast.Constant) and isinstance(question.value, str)):
        raise _shape_error(where, "QUESTION_TEMPLATE is not a string")
    fields = [name for _, name, _, _ in string.Formatter().parse(question.value) if name is not None]
    if fields != ["Question"]:
        raise _shape_error(where, f"QUESTION_TEMPLATE has the fields {fields}, not {{Question}} once")
    types = _assigned(tree.body, "TYPE_TEMPLATE")
    if not isinstance(types, ast.Dict) or not all(
        isinstance(n, ast.Constant) and isinstance(n.value, str) for n in [*types.keys, *types.values]
    ):
        raise _shape_error(where, "TYPE_TEMPLATE is not a dict of strings")
    type_templates = {k.value: v.value for k, v in zip(types.keys, types.values)}

    getitem = _function(tree, "__getitem__", where)
    separators = [
        node.func.value.value
        for node in ast.walk(getitem)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
    ]
    if len(separators) != 1:
        raise _shape_error(where, "__getitem__ does not join the options once")
    return ReleasePolicyPrompt(question.value, type_templates, separators[0])
