"""Product pictures for the sandbox catalog, drawn locally with Pillow (no downloads).

A category-coloured gradient, a simple drawing of the kind of product and the brand
name: enough for the catalog to look like a shop in screenshots and demos.
"""

from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

SIZE = 480

# (top-left colour, bottom-right colour, accent) per category code
PALETTES = {
    "phones": ("#1e3a8a", "#60a5fa", "#e0f2fe"),
    "computers": ("#312e81", "#a78bfa", "#ede9fe"),
    "appliances": ("#0f766e", "#5eead4", "#f0fdfa"),
    "groceries": ("#9a3412", "#fdba74", "#fff7ed"),
    "beauty": ("#9d174d", "#f9a8d4", "#fdf2f8"),
    "home": ("#365314", "#bef264", "#f7fee7"),
}
DEFAULT_PALETTE = ("#374151", "#d1d5db", "#f9fafb")


@cache
def _gradient(category: str, variant: int) -> Image.Image:
    start, end, _ = PALETTES.get(category, DEFAULT_PALETTE)
    big = Image.linear_gradient("L").resize((SIZE * 2, SIZE * 2)).rotate(-45 - 90 * variant)
    grey = big.crop((SIZE // 2, SIZE // 2, SIZE * 3 // 2, SIZE * 3 // 2))
    return ImageOps.colorize(grey, start, end).convert("RGB")


@cache
def _font(size: int) -> ImageFont.ImageFont:
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",):
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def _phone(d: ImageDraw.ImageDraw, accent: str):
    d.rounded_rectangle((170, 70, 310, 350), radius=26, fill="#0b1120", outline=accent, width=4)
    d.rounded_rectangle((182, 90, 298, 330), radius=16, fill="#1d4ed8")
    d.ellipse((226, 96, 254, 108), fill="#0b1120")
    d.ellipse((196, 230, 284, 318), fill="#38bdf8")


def _laptop(d: ImageDraw.ImageDraw, accent: str):
    d.rounded_rectangle((120, 100, 360, 270), radius=12, fill="#111827", outline=accent, width=4)
    d.rectangle((136, 116, 344, 254), fill="#6d28d9")
    d.polygon([(90, 285), (390, 285), (370, 320), (110, 320)], fill=accent)


def _appliance(d: ImageDraw.ImageDraw, accent: str):
    d.rounded_rectangle((150, 70, 330, 340), radius=18, fill=accent, outline="#134e4a", width=4)
    d.rectangle((150, 112, 330, 116), fill="#134e4a")
    d.ellipse((185, 150, 295, 260), fill="#ccfbf1", outline="#134e4a", width=6)
    for x in (172, 196, 220):
        d.ellipse((x, 84, x + 14, 98), fill="#134e4a")


def _grocery(d: ImageDraw.ImageDraw, accent: str):
    d.polygon([(160, 120), (320, 120), (340, 340), (140, 340)], fill=accent, outline="#7c2d12")
    d.rectangle((160, 96, 320, 122), fill="#7c2d12")
    d.ellipse((190, 180, 290, 280), fill="#f97316")
    d.rectangle((236, 160, 244, 190), fill="#166534")


def _beauty(d: ImageDraw.ImageDraw, accent: str):
    d.rounded_rectangle((185, 140, 295, 340), radius=24, fill=accent, outline="#831843", width=4)
    d.rectangle((215, 90, 265, 140), fill="#831843")
    d.rounded_rectangle((200, 210, 280, 280), radius=8, fill="#f472b6")


def _home(d: ImageDraw.ImageDraw, accent: str):
    d.polygon([(240, 70), (330, 190), (150, 190)], fill=accent, outline="#365314")
    d.rectangle((232, 190, 248, 320), fill="#365314")
    d.rounded_rectangle((170, 318, 310, 340), radius=8, fill="#365314")


SHAPES = {
    "phones": _phone,
    "computers": _laptop,
    "appliances": _appliance,
    "groceries": _grocery,
    "beauty": _beauty,
    "home": _home,
}


@cache
def _shape_layer(category: str, view: int) -> tuple[Image.Image, tuple[int, int]]:
    """The product drawing on a transparent layer: front (0), tilted (1) or small for the box shot (2)."""
    _, _, accent = PALETTES.get(category, DEFAULT_PALETTE)
    layer = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    SHAPES.get(category, _appliance)(ImageDraw.Draw(layer), accent)
    if view == 1:
        return layer.rotate(-14, resample=Image.Resampling.BICUBIC, center=(240, 210)), (0, 0)
    if view == 2:
        return layer.resize((SIZE * 7 // 10, SIZE * 7 // 10), Image.Resampling.LANCZOS), (SIZE * 15 // 100, 40)
    return layer, (0, 0)


def draw_product_image(path: Path, *, category: str, brand: str, variant: int = 0) -> None:
    """Write a JPEG product picture to `path` (variant 1, 2... are other angles/colours)."""
    image = _gradient(category, variant % 4).copy()
    if variant % 3 == 2:  # in the box: the product standing in its open carton
        box = ImageDraw.Draw(image)
        box.rounded_rectangle((96, 236, 384, 352), radius=14, fill="#f5f5f4", outline="#a8a29e", width=3)
        box.line((96, 270, 384, 270), fill="#d6d3d1", width=3)
    layer, offset = _shape_layer(category, variant % 3)
    image.paste(layer, offset, layer)
    draw = ImageDraw.Draw(image)
    font = _font(38 if len(brand) <= 12 else 28)
    width = draw.textlength(brand, font=font)
    draw.rounded_rectangle(((SIZE - width) / 2 - 18, 372, (SIZE + width) / 2 + 18, 428), radius=28, fill="#ffffffd9")
    draw.text((SIZE / 2, 400), brand, font=font, fill="#111827", anchor="mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=82, optimize=False)
