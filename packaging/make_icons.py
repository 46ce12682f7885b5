"""Draw the CloudOps icons with Pillow and write them to packaging/icons/.

Why a script rather than hand-made files: every size and format (tray PNGs, the Windows .ico, the
macOS .icns and its 1024 px source, the Linux hicolor PNGs) comes from one drawing, so they never drift
apart, and anyone can change the drawing and run this again. The results are committed: building or
running the app never needs this script.

Run: python packaging/make_icons.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent / "icons"
BLUE = (35, 99, 235, 255)
GREY = (120, 128, 140, 255)
WHITE = (255, 255, 255, 255)
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)


def draw(size: int, colour: tuple[int, int, int, int] = BLUE) -> Image.Image:
    """A rounded square in ``colour`` holding a white cloud with a check mark cut out of it.

    Drawn at 4x and downsampled, so the small tray sizes stay smooth.
    """
    s = size * 4
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, s - 1, s - 1), radius=int(s * 0.22), fill=colour)
    # The cloud: three circles on a flat base.
    u = s / 100
    for cx, cy, r in ((36, 56, 16), (54, 46, 21), (70, 58, 13)):
        d.ellipse(((cx - r) * u, (cy - r) * u, (cx + r) * u, (cy + r) * u), fill=WHITE)
    d.rounded_rectangle((20 * u, 52 * u, 83 * u, 71 * u), radius=int(9 * u), fill=WHITE)
    # The check mark, in the background colour: "planned and checked".
    d.line([(38 * u, 57 * u), (48 * u, 66 * u), (65 * u, 45 * u)], fill=colour, width=max(1, int(7 * u)),
           joint="curve")
    return img.resize((size, size), Image.LANCZOS)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    big = draw(1024)
    for size in PNG_SIZES:
        (draw(size) if size < 1024 else big).save(OUT / f"cloudops-{size}.png")
    draw(64, GREY).save(OUT / "cloudops-offline-64.png")  # the tray icon while offline mode is on
    big.save(OUT / "cloudops.ico", sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])
    big.save(OUT / "cloudops.icns")  # Pillow writes every ICNS size from the 1024 px source
    print(f"wrote {len(list(OUT.iterdir()))} files to {OUT}")


if __name__ == "__main__":
    main()
