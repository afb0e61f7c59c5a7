"""Realistic Si Lacak Perak reports, made from the sample fixtures, signed ahead of time.

Every report has its own ``id_laporan`` and a kelurahan drawn from the city's list; the
flags are varied so that most of them (``share_112``) need other agencies, i.e. 112.
"""

import copy
import csv
import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from gateway.signing import signature_header

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
WILAYAH = ROOT / "gateway" / "data" / "wilayah.csv"
WIB = timezone(timedelta(hours=7))
# valid-01 asks for the police and valid-02 has an injured child: both go to 112.
NEEDS_112 = ("valid-01-app-basic.json", "valid-02-patbm-cadre-child.json")
# valid-03 (threats, neglect, perpetrator present but no immediate danger) does not.
STAYS_LOCAL = "valid-03-hotline-anonymous-no-medis.json"


@dataclass(frozen=True, slots=True)
class Report:
    reference: str
    body: bytes
    needs_112: bool


@dataclass(frozen=True, slots=True)
class SignedReport:
    reference: str
    body: bytes
    needs_112: bool
    headers: dict[str, str]


def _template(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def _places() -> list[tuple[str, str]]:
    with WILAYAH.open(newline="") as handle:
        return [(row["kelurahan"], row["kecamatan"]) for row in csv.DictReader(handle)]


def make_reports(count: int, run_id: str, *, share_112: float = 0.9, seed: int = 8) -> list[Report]:
    """``count`` distinct reports; ``needs_112`` is what the gateway is expected to decide."""
    rng = random.Random(seed)
    places = _places()
    urgent = [_template(name) for name in NEEDS_112]
    local = _template(STAYS_LOCAL)
    reported = datetime.now(WIB).replace(microsecond=0) - timedelta(minutes=2)
    reports = []
    for i in range(count):
        needs_112 = rng.random() < share_112
        report = copy.deepcopy(rng.choice(urgent) if needs_112 else local)
        reference = f"SLP-BENCH-{run_id}-{i:07d}"
        kelurahan, kecamatan = rng.choice(places)
        report["id_laporan"] = reference
        report["waktu_laporan"] = (reported - timedelta(seconds=rng.randrange(600))).isoformat()
        location = report["lokasi"]
        location["kelurahan"], location["kecamatan"] = kelurahan, kecamatan
        location.pop("koordinat", None)
        location["rt"], location["rw"] = (
            f"{rng.randrange(1, 20):03d}",
            f"{rng.randrange(1, 15):03d}",
        )
        emergency = report.setdefault("kondisi_darurat", {})
        if needs_112:
            emergency["ada_anak"] = rng.random() < 0.5 or emergency.get("ada_anak", False)
            emergency["bahaya_langsung"] = rng.random() < 0.6
        for korban in report["korban"]:
            korban["usia"] = max(1, int(korban.get("usia") or 30) + rng.randrange(-3, 4))
        body = json.dumps(report, ensure_ascii=False, separators=(",", ":")).encode()
        reports.append(Report(reference, body, needs_112))
    return reports


def sign_reports(
    reports: Sequence[Report], secret: str, *, wall_start_s: float, rate: float
) -> list[SignedReport]:
    """Sign each report with the wall-clock second it is scheduled to be sent in, so a
    signature is fresh (inside the 5-minute tolerance) however long the run is."""
    signed = []
    for i, report in enumerate(reports):
        msg_id = str(uuid.uuid4())
        timestamp = int(wall_start_s + i / rate)
        signed.append(
            SignedReport(
                reference=report.reference,
                body=report.body,
                needs_112=report.needs_112,
                headers={
                    "content-type": "application/json",
                    "webhook-id": msg_id,
                    "webhook-timestamp": str(timestamp),
                    "webhook-signature": signature_header([secret], msg_id, timestamp, report.body),
                },
            )
        )
    return signed
