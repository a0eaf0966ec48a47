"""Writes the reference fixtures of the tokenizer unit tests (run from this directory with python3).

pretokenizer-cases.jsonl: random strings and their split by GPT-2's pre-tokenizer pattern, matched
    with the Python `regex` module exactly as Hugging Face's GPT2Tokenizer does (`regex.findall`).
utf8-replace-cases.txt: random byte strings and `bytes.decode("utf-8", errors="replace")`, one
    "HEX CODEPOINT CODEPOINT ..." line each (code points in hex; a lone "-" for empty output).

The character pool is limited to characters whose Unicode category is the same in Java 17 (Unicode 13)
and in recent `regex` releases. Generated with Python 3.11 and regex 2026.5.9; seeds are fixed.
"""
import json
import random

import regex

GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

POOL = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~")
    + ["'"] * 12 + list("stremvldSTLD") * 2 + [" "] * 20
    + ["\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x00", "\x7f", "\x85", "\xa0",
       "\u1680", "\u2000", "\u2007", "\u200a", "\u200b", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
       "\u180e", "\ufeff", "\u200d", "\xad"]
    + list("éßΩяЖ中日本ｶ\u01c5\u02b0\u05d0\u0627") + ["\U00010348", "\U0001d400"]
    + list("²½\u2160\u0663①") + ["\U0001d7d9"]
    + ["\u0301", "\u0903", "\u20dd"]
    + list("€©™’“”«»…—") + ["\U0001f600", "\U0001f44d", "\U0001f3fd"]
)


def pretokenizer_cases(count, seed):
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        text = "".join(rng.choice(POOL) for _ in range(rng.randint(1, 24)))
        cases.append({"text": text, "pieces": GPT2_PATTERN.findall(text)})
    return cases


def utf8_cases(count, seed):
    rng = random.Random(seed)
    interesting = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0,
                   0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF8, 0xFE, 0xFF]
    lines = []
    for _ in range(count):
        data = bytes(rng.choice(interesting) if rng.random() < 0.8 else rng.randrange(256)
                     for _ in range(rng.randint(1, 8)))
        text = data.decode("utf-8", errors="replace")
        lines.append(data.hex() + " " + (" ".join("%x" % ord(c) for c in text) or "-"))
    return lines


if __name__ == "__main__":
    with open("pretokenizer-cases.jsonl", "w", encoding="utf-8") as out:
        for case in pretokenizer_cases(600, seed=2024):
            out.write(json.dumps(case) + "\n")
    with open("utf8-replace-cases.txt", "w", encoding="ascii") as out:
        out.write("\n".join(utf8_cases(1500, seed=7)) + "\n")
