"""Chat templates for base models that have none (the config's ``chat_template``): a built-in by name, or a Jinja
file. The template is set on the tokenizer before anything is rendered and saved with it, so the run's model,
its GGUF export and its server format chats as training did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.errors import ConfigError

# ChatML (<|im_start|>role ... <|im_end|>): for vocabularies that hold both markers as tokens.
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Plain headings, each answer ended by the tokenizer's own end-of-sequence token: works with any vocabulary.
PLAIN = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '### User:\\n' + message['content'] + '\\n\\n' }}"
    "{% else %}{{ '### Assistant:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\\n' }}{% endif %}"
)
BUILT_IN = {"chatml": CHATML, "plain": PLAIN}


def apply_chat_template_choice(tokenizer: Any, choice: str) -> None:
    """Set ``choice`` (a built-in name or a Jinja file) as the tokenizer's chat template; ConfigError for a file
    that cannot be read or a template the vocabulary cannot end turns with."""
    if choice in BUILT_IN:
        template = BUILT_IN[choice]
        if choice == "chatml":
            vocab = tokenizer.get_vocab()
            missing = [t for t in ("<|im_start|>", "<|im_end|>") if t not in vocab]
            if missing:
                raise ConfigError(
                    f"chat_template: chatml needs {' and '.join(missing)} as tokens, which this tokenizer lacks "
                    "(the model could not end its turn); use chat_template: plain"
                )
        elif tokenizer.eos_token is None:
            raise ConfigError(
                "chat_template: plain ends each answer with the end-of-sequence token; this tokenizer has none"
            )
    else:
        path = Path(choice)
        try:
            template = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"chat_template: {choice!r} is neither a built-in ({', '.join(BUILT_IN)}) nor a readable Jinja file "
                f"({exc.__class__.__name__})"
            ) from None
    tokenizer.chat_template = template
    try:
        probe = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        tokenizer.apply_chat_template(probe, tokenize=False)
    except Exception as exc:  # a Jinja error in the user's file
        raise ConfigError(f"chat_template: {choice}: the template does not render ({exc})") from None
