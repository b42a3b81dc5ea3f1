"""Command-line flags the way kubectl (cobra/pflag) reads them: `--name=value`, `--name value`,
`-n value`, `-nvalue`, grouped boolean shorthands (`-it`), flags anywhere among the arguments, and
everything after `--` left alone. Errors use pflag's wording; argparse is not used because it exits
and words its errors differently."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import TestbedError

TRUE_WORDS = {"true", "1", "t", "yes"}
FALSE_WORDS = {"false", "0", "f", "no"}


@dataclass(frozen=True)
class Flag:
    name: str                  # the long name, without dashes
    short: str = ""            # one letter, without the dash
    takes_value: bool = True   # False: a boolean switch
    repeated: bool = False     # collect every occurrence (e.g. -f a -f b)
    bare_value: str | None = None  # the value of `--name` given without `=value` (pflag's NoOptDefVal)


@dataclass
class Parsed:
    args: list[str] = field(default_factory=list)        # positional arguments
    options: dict[str, Any] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)     # what follows `--`
    dashdash: bool = False

    def get(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)


NAMESPACE = Flag("namespace", "n")
HELP = Flag("help", "h", takes_value=False)


def _bool(flag: Flag, text: str) -> bool:
    if text.lower() in TRUE_WORDS:
        return True
    if text.lower() in FALSE_WORDS:
        return False
    raise TestbedError(f'error: invalid argument "{text}" for "--{flag.name}" flag: strconv.ParseBool: '
                       f'parsing "{text}": invalid syntax')


def parse_flags(argv: list[str], flags: list[Flag]) -> Parsed:
    by_long = {f.name: f for f in flags}
    by_short = {f.short: f for f in flags if f.short}
    parsed = Parsed()

    def store(flag: Flag, value: Any) -> None:
        if flag.repeated:
            parsed.options.setdefault(flag.name, []).append(value)
        else:
            parsed.options[flag.name] = value

    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            parsed.dashdash, parsed.command = True, argv[i:]
            break
        if token.startswith("--"):
            name, has_value, value = token[2:].partition("=")
            flag = by_long.get(name)
            if flag is None:
                raise TestbedError(f"error: unknown flag: --{name}")
            if not flag.takes_value:
                store(flag, _bool(flag, value) if has_value else True)
            elif has_value:
                store(flag, value)
            elif flag.bare_value is not None:
                store(flag, flag.bare_value)
            elif i < len(argv):
                store(flag, argv[i])
                i += 1
            else:
                raise TestbedError(f"error: flag needs an argument: --{name}")
        elif token.startswith("-") and len(token) > 1:
            letters = token[1:]
            while letters:
                letter, letters = letters[0], letters[1:]
                flag = by_short.get(letter)
                if flag is None:
                    raise TestbedError(f"error: unknown shorthand flag: '{letter}' in {token}")
                if not flag.takes_value:
                    if letters.startswith("="):
                        store(flag, _bool(flag, letters[1:]))
                        letters = ""
                    else:
                        store(flag, True)
                    continue
                if letters:
                    store(flag, letters.removeprefix("="))
                elif i < len(argv):
                    store(flag, argv[i])
                    i += 1
                else:
                    raise TestbedError(f"error: flag needs an argument: '{letter}' in {token}")
                letters = ""
        else:
            parsed.args.append(token)
    return parsed


def int_option(parsed: Parsed, name: str) -> int | None:
    value = parsed.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise TestbedError(f'error: invalid argument "{value}" for "--{name}" flag: strconv.ParseInt: '
                           f'parsing "{value}": invalid syntax') from None
