# ruff: noqa: E501  (one-line generators of sample strings read better unwrapped)
"""Regenerates ``risk_corpus.jsonl`` (deterministic: fixed seed). Run: .venv/bin/python tests/data/gen_risk_corpus.py

Positives are valid values built the way issuers build them (Luhn and mod-97 check digits
computed, phone numbers checked with phonenumbers, real key formats) inside ordinary agent
prompts; negatives are the look-alikes that fill real payloads: UUIDs, hashes, timestamps,
order and tracking numbers, version strings, base64 images, Luhn-failing card numbers,
IBANs with a wrong checksum, SSNs in never-issued ranges, and so on.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from collections.abc import Callable
from pathlib import Path

import phonenumbers
from stdnum import iban, luhn

R = random.Random(20261203)
OUT = Path(__file__).with_name("risk_corpus.jsonl")
B62 = string.ascii_letters + string.digits

TEMPLATES = [
    "Please update the customer record: {v}. Thanks!",
    "User wrote: my details are {v} — can you check the account?",
    'Tool result: {{"status": "ok", "field": "{v}"}}',
    "Summarise this ticket. Reporter mentioned {v} in the description.",
    "Error while processing {v}; retrying in 5s (attempt 3 of 5).",
    "config:\n  value: {v}\n  retries: 3",
    "{v}",
]


def tpl(v: str) -> str:
    return R.choice(TEMPLATES).format(v=v)


def rs(n: int, alphabet: str = B62) -> str:
    return "".join(R.choice(alphabet) for _ in range(n))


def email() -> str:
    first = R.choice(["john", "maria", "li.wei", "a.smith", "devops+alerts", "o_brien", "k.tanaka", "sam"])
    dom = R.choice(["example.com", "corp.example.org", "mail.co.uk", "acme.io", "uni-bonn.de", "shop.example.net"])
    return f"{first}{R.randint(1, 999)}@{dom}"


def phone() -> str:
    while True:
        kind = R.randrange(4)
        if kind == 0:
            v = f"({R.choice([212, 415, 617, 312, 206, 303, 512, 646])}) {R.randint(200, 999)}-{R.randint(0, 9999):04d}"
        elif kind == 1:
            v = f"{R.choice([202, 718, 213, 305, 404])}-{R.randint(200, 999)}-{R.randint(0, 9999):04d}"
        elif kind == 2:
            v = f"+1 {R.choice([415, 917, 650])} {R.randint(200, 999)} {R.randint(0, 9999):04d}"
        else:
            v = R.choice(
                [
                    f"+44 20 7{R.randint(100, 999)} {R.randint(1000, 9999)}",
                    f"+49 30 {R.randint(1000000, 9999999)}",
                    f"+33 1 {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)}",
                    f"+81 3-{R.randint(1000, 9999)}-{R.randint(1000, 9999)}",
                ]
            )
        if phonenumbers.is_valid_number(phonenumbers.parse(v, "US")):
            return v


def card() -> str:
    prefix, length = R.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("37", 15), ("6011", 16), ("3530", 16)])
    body = prefix + "".join(R.choice(string.digits) for _ in range(length - len(prefix) - 1))
    digits = body + luhn.calc_check_digit(body)
    sep = R.choice(["", " ", "-"])
    if length == 15:
        return sep.join([digits[:4], digits[4:10], digits[10:]])
    return sep.join(digits[i : i + 4] for i in range(0, 16, 4))


def bad_luhn_card() -> str:
    v = card().replace(" ", "").replace("-", "")
    return v[:-1] + str((int(v[-1]) + R.randint(1, 9)) % 10)


def iban_value(valid: bool = True) -> str:
    cc, bban = R.choice(
        [
            ("DE", "".join(R.choice(string.digits) for _ in range(18))),
            ("GB", R.choice(["NWBK", "BARC", "HBUK"]) + "".join(R.choice(string.digits) for _ in range(14))),
            ("FR", "".join(R.choice(string.digits) for _ in range(23))),
            ("NL", R.choice(["ABNA", "INGB", "RABO"]) + "".join(R.choice(string.digits) for _ in range(10))),
            ("ES", "".join(R.choice(string.digits) for _ in range(20))),
        ]
    )
    check = iban.calc_check_digits(cc + "00" + bban)
    if not valid:
        check = f"{(int(check) + R.randint(1, 50)) % 97 + 2:02d}"
    v = cc + check + bban
    if not iban.is_valid(v) and valid:
        return iban_value(valid)
    if not valid and iban.is_valid(v):
        return iban_value(valid)
    return " ".join(v[i : i + 4] for i in range(0, len(v), 4)) if R.random() < 0.5 else v


def ssn() -> str:
    area = R.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{R.randint(1, 99):02d}-{R.randint(1, 9999):04d}"


def ip() -> str:
    if R.random() < 0.75:
        return ".".join(str(R.randint(1, 254)) for _ in range(4))
    return R.choice(
        [
            f"2001:db8:{R.randint(0, 0xFFFF):x}::{R.randint(1, 0xFFFF):x}",
            f"fe80::{R.randint(0, 0xFFFF):x}:{R.randint(0, 0xFFFF):x}:{R.randint(1, 0xFFFF):x}",
        ]
    )


def jwt() -> str:
    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'sub': rs(8), 'iat': R.randint(1600000000, 1800000000)})}.{rs(43, B62 + '-_')}"


SECRETS: dict[str, Callable[[], str]] = {
    "openai_key": lambda: R.choice(
        [f"sk-proj-{rs(40, B62 + '-_')}", f"sk-{rs(20)}T3BlbkFJ{rs(20)}", f"sk-svcacct-{rs(48)}"]
    ),
    "anthropic_key": lambda: f"sk-ant-api03-{rs(93, B62 + '-_')}AA",
    "aws_access_key": lambda: R.choice(["AKIA", "ASIA"]) + rs(16, string.ascii_uppercase + string.digits),
    "github_token": lambda: R.choice([f"ghp_{rs(36)}", f"gho_{rs(36)}", f"github_pat_{rs(82, B62 + '_')}"]),
    "slack_token": lambda: R.choice(
        [
            f"xoxb-{R.randint(10**10, 10**11)}-{R.randint(10**12, 10**13)}-{rs(24)}",
            f"https://hooks.slack.com/services/T{rs(8)}/B{rs(8)}/{rs(24)}",
        ]
    ),
    "stripe_key": lambda: R.choice(["sk_live_", "rk_live_", "sk_test_"]) + rs(R.choice([24, 99])),
    "private_key": lambda: (
        "-----BEGIN "
        + R.choice(["RSA ", "EC ", "OPENSSH ", ""])
        + "PRIVATE KEY-----\n"
        + "\n".join(rs(64, B62 + "+/") for _ in range(3))
        + "\n-----END PRIVATE KEY-----"
    ),
    "jwt": jwt,
    "high_entropy_token": lambda: R.choice(
        [
            f'password = "{rs(24)}"',
            f"client_secret: {rs(32)}",
            f'"api_key": "{rs(40)}"',
            f"DB_PASSWORD={rs(20)}",
        ]
    ),
}

PII: dict[str, Callable[..., str]] = {
    "email": email,
    "phone": phone,
    "credit_card": card,
    "iban": iban_value,
    "us_ssn": ssn,
    "ip_address": ip,
}


def negatives() -> list[str]:
    gens: list[Callable[[], str]] = [
        lambda: f"request id {uuid.UUID(int=R.getrandbits(128))} failed",
        lambda: f"commit {rs(40, '0123456789abcdef')} fixed the flaky test",
        lambda: f"short sha {rs(7, '0123456789abcdef')}, sha256 {rs(64, '0123456789abcdef')}",
        lambda: (
            f"at 2024-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}T{R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d}Z the job ran"
        ),
        lambda: f"timestamp_ms={R.randint(1600000000000, 1800000000000)}",
        lambda: f"order ORD-{R.randint(2019, 2026)}-{R.randint(0, 999999):06d} shipped",
        lambda: f"order number {R.randint(10**15, 10**16 - 1)}".replace("order number 4", "order number 9"),
        lambda: f"card on file ends in {R.randint(1000, 9999)}; number {bad_luhn_card()} was declined",
        lambda: f"UPS tracking 1Z{rs(6, string.ascii_uppercase + string.digits)}{R.randint(10**9, 10**10 - 1)}",
        lambda: (
            f"USPS 9400 {R.randint(1000, 9999)} {R.randint(1000, 9999)} {R.randint(1000, 9999)} {R.randint(1000, 9999)} {R.randint(10, 99)}"
        ),
        lambda: f"FedEx {R.randint(10**11, 10**12 - 1)}",
        lambda: (
            f"upgrade to v{R.randint(1, 9)}.{R.randint(0, 30)}.{R.randint(0, 30)}.{R.randint(0, 300)} and numpy {R.randint(1, 2)}.{R.randint(0, 30)}.{R.randint(0, 9)}"
        ),
        lambda: f"Chrome/{R.randint(100, 130)}.0.{R.randint(1000, 9999)}.{R.randint(10, 200)} on Linux",
        lambda: f"![chart](data:image/png;base64,{base64.b64encode(R.randbytes(R.randint(60, 300))).decode()})",
        lambda: "use icon@2x.png and logo@3x.png in the header",
        lambda: f"git clone git@github.com:acme/{rs(6, string.ascii_lowercase)}.git",
        lambda: "std::vector<int> v; std::map<std::string, int> m; a::b::c",
        lambda: f"meeting at {R.randint(1, 12)}:{R.randint(10, 59)}:00 and {R.randint(10, 23)}:30:00",
        lambda: f"MAC {':'.join(rs(2, '0123456789ABCDEF') for _ in range(6))}",
        lambda: f"invalid address {R.randint(256, 999)}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(0, 255)}",
        lambda: f"OID 1.3.6.1.4.1.{R.randint(100, 99999)}.{R.randint(1, 9)}",
        lambda: (
            f"ssn field was {R.choice(['000', '666', '9' + str(R.randint(10, 99))])}-{R.randint(10, 99)}-{R.randint(1000, 9999)} (invalid)"
        ),
        lambda: f"IBAN {iban_value(valid=False)} rejected by the bank",
        lambda: f"call 123-{R.randint(200, 999)}-{R.randint(1000, 9999)} is not a number",
        lambda: f"max_tokens: {R.randint(100, 8192)}, temperature: 0.{R.randint(1, 9)}",
        lambda: f"token count = {R.randint(1000, 99999)} tokens",
        lambda: "pip install scikit-learn; import sklearn; sk-learn tutorial",
        lambda: f"publishable key pk_live_{rs(24)} is safe to embed",
        lambda: f"ASIAN markets rallied {R.randint(1, 9)}% and AKIA{rs(8, string.ascii_uppercase)} is too short",
        lambda: "eyJhbGciOiJIUzI1NiJ9.not-a-payload.sig is a truncated header",
        lambda: (
            f"pi is {R.random() * 10:.14f}, total 1,{R.randint(100, 999)},{R.randint(100, 999)}.{R.randint(10, 99)}"
        ),
        lambda: f"md5: {rs(32, '0123456789abcdef')}",
        lambda: f"@{R.choice(['alice', 'bob', 'carol'])} please review PR #{R.randint(100, 9999)}",
        lambda: f"ISBN 978-{R.randint(0, 1)}-{R.randint(100, 999)}-{R.randint(10000, 99999)}-{R.randint(0, 9)}",
        lambda: f"password: {R.choice(['see vault', 'REDACTED', '********', 'ask the admin'])}",
        lambda: f"color #{rs(6, '0123456789abcdef')} and width {R.randint(100, 999)}px",
        lambda: f"session_token_ttl = {R.randint(60, 86400)}",
        lambda: f"the api_key field must be set via the environment, not inline ({R.randint(1, 99)} services)",
        lambda: f"item SKU-{R.randint(10000, 99999)}-{rs(3, string.ascii_uppercase)} qty {R.randint(1, 50)}",
        lambda: R.choice(
            [
                "SECRET_KEY = settings.DJANGO_SECRET_KEY",
                "token = self.tokenizer.encodeBatch(texts)",
                "auth_token=request.headers.getAuthToken()",
                "access_key: getAccessKeyFromEnvironment",
                'api_key = os.environ["OPENAI_API_KEY"]',
                "password: ${{ secrets.DB_PASSWORD }}",
            ]
        ),
        lambda: f"date 20{R.randint(10, 29)}.{R.randint(1, 12):02d}.{R.randint(1, 28):02d} at 10.0 percent",
    ]
    return [g() for g in gens for _ in range(6)]


def main() -> None:
    rows: list[dict[str, object]] = []
    for kind, gen in {**PII, **SECRETS}.items():
        for _ in range(15):
            rows.append({"text": tpl(gen()), "expected": {kind: 1}})
    for text in negatives():
        rows.append({"text": tpl(text), "expected": {}})
    with OUT.open("w") as f:
        for i, row in enumerate(rows):
            f.write(json.dumps({"id": i, **row}) + "\n")
    pos = sum(1 for r in rows if r["expected"])
    print(f"{OUT}: {pos} positive, {len(rows) - pos} negative")


if __name__ == "__main__":
    main()
