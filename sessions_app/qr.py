"""QR code images (segno: pure Python, no Pillow)."""

import io

import segno

SCALE = 6


def qr_png(code: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(code, error="l").save(buffer, kind="png", scale=SCALE, border=4)
    return buffer.getvalue()


def qr_data_url(code: str) -> str:
    return segno.make(code, error="l").png_data_uri(scale=SCALE, border=4)
