"""What an image or PDF file is, read from its bytes with the standard library (tests have no Pillow or PDF library).

``png_size``, ``jpeg_size``, ``webp_size``: pixel sizes from the headers, which
also proves the magic bytes. ``pdf_facts``: pages, page size, text operators,
images, and the text (glyphs mapped back through the fonts' ToUnicode maps).
"""

import re
import struct
import zlib
from dataclasses import dataclass


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    return struct.unpack(">II", data[16:24])


# Start-of-frame markers (baseline, progressive, ...) carry the size; C4, C8 and CC are not frames.
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes) -> tuple[int, int]:
    assert data[:3] == b"\xff\xd8\xff", data[:4]
    at = 2
    while at < len(data):
        assert data[at] == 0xFF, f"no marker at {at}"
        marker = data[at + 1]
        length = struct.unpack(">H", data[at + 2 : at + 4])[0]
        if marker in SOF_MARKERS:
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    raise AssertionError("no frame header in the JPEG")


def webp_size(data: bytes) -> tuple[int, int]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP", data[:16]
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: a key frame's header after its start code
        assert data[23:26] == b"\x9d\x01\x2a"
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: 14 bits each after the signature byte
        assert data[20] == 0x2F
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 24-bit sizes minus one
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise AssertionError(f"unknown WebP chunk {chunk!r}")


@dataclass
class PdfFacts:
    pages: int
    page_size: tuple[float, float]
    text_operators: int
    images: int
    text: str


STREAM = re.compile(rb"<<(.*?)>>\s*stream\r?\n(.*?)\r?\nendstream", re.S)
HEX_IN_TEXT = re.compile(rb"<([0-9A-Fa-f]+)>")
TEXT_OPERATORS = re.compile(rb"(\[[^\]]*\]\s*TJ|<[0-9A-Fa-f]*>\s*Tj|\([^)]*\)\s*Tj)")


def _streams(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for header, body in STREAM.findall(data):
        if b"/FlateDecode" in header:
            try:
                body = zlib.decompress(body)
            except zlib.error:
                continue
        out.append((header, body))
    return out


def _to_unicode(cmap: bytes) -> dict[bytes, str]:
    """A ToUnicode CMap's bfchar and bfrange entries: glyph code (hex, upper case) -> text."""
    mapping = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", cmap, re.S):
        for code, text in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            mapping[code.upper()] = bytes.fromhex(text.decode()).decode("utf-16-be", "replace")
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", cmap, re.S):
        for low, high, start in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            width, first = len(low), int(start, 16)
            for offset, code in enumerate(range(int(low, 16), int(high, 16) + 1)):
                mapping[f"{code:0{width}X}".encode()] = chr(first + offset)
    return mapping


def pdf_facts(data: bytes) -> PdfFacts:
    assert data.startswith(b"%PDF-"), data[:8]
    streams = _streams(data)
    cmaps = [_to_unicode(body) for _, body in streams if b"beginbfchar" in body or b"beginbfrange" in body]
    content = b"\n".join(body for _, body in streams if b"BT" in body or b" re" in body or b" cm" in body)
    operators = TEXT_OPERATORS.findall(content)
    texts = []
    for operator in operators:
        for code in HEX_IN_TEXT.findall(operator):
            code = code.upper()
            for cmap in cmaps:
                width = len(next(iter(cmap), b"0000"))
                glyphs = [code[i : i + width] for i in range(0, len(code), width)]
                if all(glyph in cmap for glyph in glyphs):
                    texts.append("".join(cmap[glyph] for glyph in glyphs))
                    break
    boxes = re.findall(rb"/MediaBox\s*\[\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*\]", data)
    x0, y0, x1, y1 = (float(v) for v in boxes[0]) if boxes else (0, 0, 0, 0)
    return PdfFacts(
        pages=len(re.findall(rb"/Type\s*/Page\b(?!s)", data)),
        page_size=(x1 - x0, y1 - y0),
        text_operators=len(operators),
        images=len(re.findall(rb"/Subtype\s*/Image", data)),
        text="".join(texts),
    )
