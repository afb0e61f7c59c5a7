"""The Si Lacak Perak report, v1, as the gateway accepts it (inbound, Indonesian field names).

This model checks structure only: types, required fields, the closed vocabularies and
numeric ranges. Whether a phone number, a time or a place name means something is
decided by the gateway's Si Lacak Perak adapter, which also maps this vocabulary onto
the canonical case (``contracts.case``).

Validation is strict: a number is not accepted for a string, nor a string for a
number or a boolean. ``null`` is accepted wherever a field is optional. Unknown fields
are ignored, so the app can add fields before the gateway knows them.
"""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from contracts.sensitivity import Sensitivity, classified

S0, S1, S2, S3 = Sensitivity.S0, Sensitivity.S1, Sensitivity.S2, Sensitivity.S3

INVALID_TEXT = "invalid_text"

Kanal = Literal["aplikasi", "hotline", "whatsapp", "kader_patbm"]
JenisKekerasan = Literal[
    "fisik", "psikis", "seksual", "penelantaran", "eksploitasi", "trafiking", "lainnya"
]
TempatKejadian = Literal["rumah_tangga", "tempat_kerja", "sekolah", "fasilitas_umum", "lainnya"]
JenisKelamin = Literal["L", "P"]
HubunganTerlapor = Literal[
    "suami",
    "istri",
    "ayah",
    "ibu",
    "ayah_tiri",
    "ibu_tiri",
    "anak",
    "saudara",
    "mertua",
    "pacar",
    "lainnya",
]


def _encodable(value: str) -> str:
    """Refuse lone surrogates (``"\\ud800"`` is valid JSON but cannot be stored as UTF-8)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(INVALID_TEXT, "contains characters that are not text") from None
    return value


Text = Annotated[str, AfterValidator(_encodable)]

# Longest accepted text per kind of field (characters); longer is refused naming the field.
IDENTIFIER = 64
TIMESTAMP = 40
DATE = 32
NAME = 120
PHONE = 32
WORD = 60
PLACE = 80
NEIGHBOURHOOD = 8
ADDRESS = 300
NOTE = 1000
NARRATIVE = 5000
URL = 2048
MEDIA_TYPE = 255


class Inbound(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Pelapor(Inbound):
    nama: Text | None = classified(S2, None, max_length=NAME)
    no_hp: Text | None = classified(
        S2, None, max_length=PHONE, description="Any Indonesian writing of the number."
    )
    hubungan_dengan_korban: Text | None = classified(
        S2, None, max_length=WORD, examples=["tetangga", "korban"]
    )
    kader_patbm: bool | None = classified(S1, None)
    id_kader: Text | None = classified(S2, None, max_length=IDENTIFIER)
    anonim: bool | None = classified(S1, None)


class Korban(Inbound):
    nama: Text | None = classified(S3, None, max_length=NAME)
    nik: Text | None = classified(S3, None, max_length=16, pattern=r"^[0-9]{16}$")
    jenis_kelamin: JenisKelamin | None = classified(S1, None)
    usia: int | None = classified(S3, None, ge=0, le=130, description="Age in years.")
    tanggal_lahir: Text | None = classified(S3, None, max_length=DATE, description="YYYY-MM-DD")
    no_hp: Text | None = classified(S3, None, max_length=PHONE)
    disabilitas: bool | None = classified(S1, None)
    hamil: bool | None = classified(S1, None)
    luka: Text | None = classified(S3, None, max_length=NOTE, description="Injuries, free text.")


class Terlapor(Inbound):
    nama: Text | None = classified(S3, None, max_length=NAME)
    jenis_kelamin: JenisKelamin | None = classified(S1, None)
    usia: int | None = classified(S3, None, ge=0, le=130)
    hubungan_dengan_korban: HubunganTerlapor | None = classified(S1, None)
    masih_di_lokasi: bool | None = classified(S1, None)
    bersenjata: bool | None = classified(S1, None)


class Koordinat(Inbound):
    lat: float = classified(S2, ge=-90, le=90, allow_inf_nan=False)
    lng: float = classified(S2, ge=-180, le=180, allow_inf_nan=False)
    akurasi_m: float | None = classified(S2, None, ge=0, allow_inf_nan=False)


class Lokasi(Inbound):
    alamat: Text | None = classified(S2, None, max_length=ADDRESS)
    rt: Text | None = classified(S2, None, max_length=NEIGHBOURHOOD)
    rw: Text | None = classified(S2, None, max_length=NEIGHBOURHOOD)
    kelurahan: Text = classified(S1, max_length=PLACE, description="As people write it.")
    kecamatan: Text | None = classified(
        S1, None, max_length=PLACE, description="As people write it."
    )
    patokan: Text | None = classified(S2, None, max_length=ADDRESS, description="Landmark.")
    koordinat: Koordinat | None = classified(S2, None)


class KondisiDarurat(Inbound):
    bahaya_langsung: bool | None = classified(S1, None)
    ada_anak: bool | None = classified(S1, None)
    butuh_medis: bool | None = classified(S1, None)
    butuh_polisi: bool | None = classified(S1, None)


class Lampiran(Inbound):
    url: Text = classified(S3, min_length=1, max_length=URL)
    jenis: Text | None = classified(S1, None, max_length=MEDIA_TYPE, description="MIME type.")
    sha256: Text | None = classified(S0, None, max_length=64, pattern=r"^[0-9a-fA-F]{64}$")


class Persetujuan(Inbound):
    berbagi_data_korban: bool | None = classified(S1, None)


class LaporanSiLacakPerak(Inbound):
    """One report pushed by the Si Lacak Perak backend."""

    id_laporan: Text = classified(
        S0, max_length=IDENTIFIER, pattern=r"\S", description="The app's own report id."
    )
    waktu_laporan: Text = classified(
        S1, max_length=TIMESTAMP, description="ISO 8601; without offset it is WIB."
    )
    kanal: Kanal = classified(S1)
    pelapor: Pelapor | None = classified(S2, None)
    korban: list[Korban] = classified(S3, min_length=1)
    terlapor: list[Terlapor] | None = classified(S3, None)
    lokasi: Lokasi = classified(S1)
    jenis_kekerasan: list[JenisKekerasan] = classified(S1, min_length=1)
    tempat_kejadian: TempatKejadian | None = classified(S1, None)
    kronologi: Text | None = classified(S3, None, max_length=NARRATIVE)
    kondisi_darurat: KondisiDarurat | None = classified(S1, None)
    lampiran: list[Lampiran] | None = classified(S3, None)
    persetujuan: Persetujuan | None = classified(S1, None)
