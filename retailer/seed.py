"""The sandbox retailer's demo catalog: about 250 products in six categories, CNY prices.

`seed_sandbox_catalog()` is idempotent: a second run only redraws pictures that are
missing on disk and returns in well under a second.
"""

import random
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction

from retailer.api import RETAILER_NAME
from retailer.images import draw_product_image
from retailer.models import SandboxCategory, SandboxProduct
from retailer.services import take_seq

CATEGORIES = [
    ("phones", "Phones"),
    ("computers", "Computers & tablets"),
    ("appliances", "Home appliances"),
    ("groceries", "Groceries"),
    ("beauty", "Beauty & personal care"),
    ("home", "Home & living"),
]

# category -> [(brand, model line, base price, [(variant, price delta), ...], description)]
LINES: dict[str, list[tuple[str, str, int, list[tuple[str, int]], str]]] = {
    "phones": [
        (
            "Xiaomi",
            "Xiaomi 15 5G",
            4499,
            [("12GB+256GB Black", 0), ("12GB+512GB White", 500), ("16GB+1TB Green", 1300)],
            "Leica optics, Snapdragon 8 Elite, 5400mAh battery with 90W HyperCharge.",
        ),
        (
            "Xiaomi",
            "Redmi K80",
            2499,
            [("12GB+256GB Snow", 0), ("16GB+512GB Mist Blue", 700)],
            "2K OLED display, 6550mAh battery, IP68 dust and water resistance.",
        ),
        (
            "Xiaomi",
            "Redmi Note 14 Pro",
            1399,
            [("8GB+256GB Black", 0), ("12GB+512GB Purple", 400)],
            "200MP main camera, 120Hz curved screen, 45W fast charging.",
        ),
        (
            "HUAWEI",
            "HUAWEI Mate 70 Pro",
            6499,
            [("12GB+512GB Obsidian Black", 0), ("16GB+1TB Spruce Green", 1500)],
            "Kirin chipset, XMAGE variable-aperture camera, satellite messaging.",
        ),
        (
            "HUAWEI",
            "HUAWEI nova 13",
            2699,
            [("256GB Feather Sand", 0), ("512GB Starry Black", 300)],
            "Portrait front camera with 60MP ultra-wide, 100W SuperCharge.",
        ),
        (
            "HUAWEI",
            "HUAWEI Pura 70",
            5499,
            [("12GB+256GB Snowy White", 0), ("12GB+512GB Ice Blue", 500)],
            "Ultra-lighting camera, Kunlun Glass, 5000mAh battery.",
        ),
        (
            "Apple",
            "iPhone 16",
            5999,
            [("128GB Ultramarine", 0), ("256GB Teal", 1000), ("512GB Black", 3000)],
            "A18 chip, Camera Control, 48MP Fusion camera, USB-C.",
        ),
        (
            "Apple",
            "iPhone 16 Pro Max",
            9999,
            [("256GB Desert Titanium", 0), ("512GB Natural Titanium", 2000)],
            "A18 Pro, 6.9-inch Super Retina XDR, 5x telephoto, titanium design.",
        ),
        (
            "OPPO",
            "OPPO Find X8",
            4199,
            [("12GB+256GB Starry Black", 0), ("16GB+512GB Bubble Pink", 800)],
            "Hasselblad cameras, Dimensity 9400, 5630mAh battery.",
        ),
        (
            "OPPO",
            "OPPO Reno13",
            2699,
            [("12GB+256GB Butterfly Purple", 0), ("16GB+512GB Midnight Black", 600)],
            "AI Live Photo, IP69 water resistance, 80W SUPERVOOC.",
        ),
        (
            "vivo",
            "vivo X200 Pro",
            5299,
            [("12GB+256GB Titanium Grey", 0), ("16GB+1TB Sapphire Blue", 1700)],
            "ZEISS APO telephoto, 6000mAh semi-solid battery, 90W flash charge.",
        ),
        (
            "vivo",
            "iQOO 13",
            3999,
            [("12GB+256GB Legend", 0), ("16GB+512GB Track", 500)],
            "Snapdragon 8 Elite, 144Hz 2K display, 120W charging.",
        ),
        (
            "HONOR",
            "HONOR Magic7",
            4499,
            [("12GB+256GB Moon Shadow Grey", 0), ("16GB+512GB Sky Blue", 500)],
            "Falcon camera system, MagicOS 9, silicon-carbon battery.",
        ),
        (
            "OnePlus",
            "OnePlus 13",
            4499,
            [("12GB+256GB Black Eclipse", 0), ("24GB+1TB Midnight Ocean", 1400)],
            "Hasselblad camera, 6000mAh battery, 100W wired and 50W wireless.",
        ),
        (
            "realme",
            "realme GT7 Pro",
            3599,
            [("12GB+256GB Mars Orange", 0), ("16GB+512GB Light Domain White", 600)],
            "Underwater photography mode, 6500mAh battery, Eco2 OLED Plus.",
        ),
    ],
    "computers": [
        (
            "Lenovo",
            "Lenovo Legion Y9000P 2025 gaming laptop",
            9999,
            [("i9/32GB/1TB RTX 5070 Ti", 0), ("i9/32GB/1TB RTX 5080", 3000)],
            "16-inch 2.5K 240Hz display, Legion Coldfront cooling.",
        ),
        (
            "Lenovo",
            "Lenovo Xiaoxin Pro 14",
            4999,
            [("Ultra 5/16GB/1TB", 0), ("Ultra 7/32GB/1TB", 1200)],
            "2.8K 120Hz OLED, 1.39kg, 84Wh battery.",
        ),
        (
            "Lenovo",
            "Lenovo Xiaoxin Pad Pro 12.7",
            1999,
            [("8GB+128GB", 0), ("8GB+256GB", 300)],
            "2.9K 144Hz display, eight speakers, 10200mAh battery.",
        ),
        (
            "HUAWEI",
            "HUAWEI MateBook X Pro",
            11999,
            [("Ultra 7/32GB/1TB", 0), ("Ultra 9/32GB/2TB", 2500)],
            "980g magnesium-alloy body, 3.1K OLED touchscreen.",
        ),
        (
            "HUAWEI",
            "HUAWEI MatePad Pro 13.2",
            5199,
            [("12GB+256GB", 0), ("16GB+1TB", 2000)],
            "Flexible OLED, M-Pencil support, HarmonyOS productivity.",
        ),
        (
            "Apple",
            "MacBook Air 13 M4",
            7999,
            [("16GB/256GB Sky Blue", 0), ("16GB/512GB Midnight", 1500), ("24GB/512GB Silver", 3000)],
            "M4 chip, up to 18 hours battery life, fanless.",
        ),
        (
            "Apple",
            "iPad Air 11 M3",
            4799,
            [("128GB Wi-Fi", 0), ("256GB Wi-Fi", 900)],
            "M3 chip, Liquid Retina display, Apple Pencil Pro support.",
        ),
        (
            "Xiaomi",
            "Xiaomi Pad 7",
            1999,
            [("8GB+128GB", 0), ("12GB+256GB", 500)],
            "3.2K 144Hz display, Snapdragon 7+ Gen 3, 8850mAh.",
        ),
        (
            "ASUS",
            "ASUS ROG Strix G16",
            10999,
            [("i9/16GB/1TB RTX 5060", 0), ("i9/32GB/1TB RTX 5070", 2000)],
            "16-inch 240Hz Nebula display, tri-fan cooling.",
        ),
        (
            "Dell",
            "Dell Inspiron 14 Plus",
            5699,
            [("Ultra 5/16GB/512GB", 0), ("Ultra 7/32GB/1TB", 1500)],
            "2.8K display, thin aluminium chassis, Thunderbolt 4.",
        ),
        (
            "Logitech",
            "Logitech MX Master 3S mouse",
            749,
            [("Graphite", 0), ("Pale Grey", 0)],
            "8K DPI sensor, quiet clicks, MagSpeed scroll wheel.",
        ),
        (
            "Logitech",
            "Logitech MX Keys S keyboard",
            899,
            [("Graphite", 0)],
            "Backlit low-profile keys, multi-device, USB-C rechargeable.",
        ),
    ],
    "appliances": [
        (
            "Midea",
            "Midea inverter air conditioner 1.5 HP",
            2699,
            [("Wall-mounted, Class 1", 0), ("Wall-mounted, fresh air", 800)],
            "Class 1 energy efficiency, self-cleaning, app control.",
        ),
        (
            "Midea",
            "Midea 10kg front-load washer",
            2199,
            [("Washer", 0), ("Washer-dryer", 800)],
            "Direct-drive inverter motor, steam care, 1400 rpm.",
        ),
        (
            "Midea",
            "Midea 2.0L rice cooker",
            299,
            [("IH heating", 0), ("IH heating, low sugar", 200)],
            "Induction heating, 24-hour schedule, non-stick inner pot.",
        ),
        (
            "Gree",
            "Gree Yunjia air conditioner 1 HP",
            2299,
            [("Class 1 inverter", 0), ("Class 1, self-cleaning", 300)],
            "Quiet 18 dB night mode, fast cooling and heating.",
        ),
        (
            "Haier",
            "Haier 510L French-door refrigerator",
            4999,
            [("Silver", 0), ("Champagne gold", 500)],
            "Dual-system cooling, dry/wet zones, 0.5 mm ultra-thin sides.",
        ),
        (
            "Haier",
            "Haier 60L electric water heater",
            1299,
            [("3300W", 0), ("3300W, app control", 200)],
            "Magnesium anode, fast heating, scale protection.",
        ),
        (
            "Xiaomi",
            "Mijia robot vacuum X20+",
            2999,
            [("Self-emptying dock", 0)],
            "6000 Pa suction, mop lifting, auto-cleaning base station.",
        ),
        (
            "Xiaomi",
            "Mijia air purifier 4 Pro",
            1299,
            [("Standard", 0)],
            "CADR 500 m3/h, OLED touch display, formaldehyde filter.",
        ),
        (
            "Ecovacs",
            "Ecovacs DEEBOT T50 Pro",
            3999,
            [("Standard dock", 0), ("Omni dock", 1000)],
            "12800 Pa suction, 5 mm ultra-thin mop, AI obstacle avoidance.",
        ),
        (
            "Dreame",
            "Dreame H14 Pro wet and dry vacuum",
            1999,
            [("Standard", 0)],
            "180-degree lie-flat design, hot-air drying, edge cleaning.",
        ),
        (
            "Supor",
            "Supor 1.7L electric kettle",
            129,
            [("Stainless steel", 0), ("Temperature control", 60)],
            "304 stainless steel, boil-dry protection, 1800W.",
        ),
        (
            "Joyoung",
            "Joyoung soymilk and soup maker",
            599,
            [("1.2L", 0), ("1.2L, self-cleaning", 300)],
            "Quiet high-speed blender, 8 programs, hot and cold drinks.",
        ),
        (
            "Bear",
            "Bear 5L air fryer",
            269,
            [("Visual window", 0), ("Dual basket", 130)],
            "Oil-free frying, 360-degree hot air, 8 presets.",
        ),
        (
            "Dyson",
            "Dyson Supersonic hair dryer HD15",
            3199,
            [("Fuchsia", 0), ("Prussian blue", 0)],
            "Intelligent heat control, five magnetic attachments.",
        ),
        (
            "Panasonic",
            "Panasonic 20L microwave oven",
            699,
            [("Inverter", 0), ("Inverter with grill", 300)],
            "Even heating with inverter technology, 20 auto menus.",
        ),
    ],
    "groceries": [
        ("Wahaha", "Wahaha AD calcium milk drink", 39, [("220g x 24", 0)], "The classic sweet-and-sour milk drink."),
        (
            "Master Kong",
            "Master Kong braised beef noodles",
            45,
            [("Pack of 12", 0), ("Pack of 24", 40)],
            "The classic instant noodles with braised beef flavour.",
        ),
        (
            "Tianchuang",
            "Yunnan Pu'er tea cake",
            168,
            [("357g ripe", 0), ("357g raw", 40)],
            "Aged Pu'er from Menghai, pressed in traditional cakes.",
        ),
        (
            "Three Squirrels",
            "Three Squirrels daily mixed nuts",
            89,
            [("750g, 30 packs", 0), ("1.5kg gift box", 80)],
            "Walnuts, cashews, almonds, cranberries and raisins in daily packs.",
        ),
        (
            "BeStore",
            "BeStore beef jerky",
            49,
            [("Spicy, 200g", 0), ("Original, 200g", 0)],
            "Inner Mongolia beef, air-dried, high protein.",
        ),
        (
            "Wuliangye",
            "Wuliangye 8th generation baijiu 52%",
            1099,
            [("500ml", 0), ("500ml x2 gift box", 1050)],
            "Strong-aroma baijiu from Yibin, Sichuan.",
        ),
        (
            "Kweichow Moutai",
            "Moutai Flying Fairy 53%",
            2799,
            [("500ml", 0)],
            "Sauce-aroma baijiu from Maotai town, Guizhou.",
        ),
        (
            "Yili",
            "Yili Satine pure milk",
            69,
            [("250ml x 12", 0), ("250ml x 24", 60)],
            "3.6 g protein per 100 ml, from selected pastures.",
        ),
        (
            "Mengniu",
            "Mengniu Deluxe organic milk",
            75,
            [("250ml x 12", 0)],
            "Certified organic, 3.8 g protein per 100 ml.",
        ),
        (
            "Nongfu Spring",
            "Nongfu Spring natural water",
            39,
            [("550ml x 24", 0), ("5L x 4", -10)],
            "Natural water from protected sources.",
        ),
        (
            "Wuchang",
            "Wuchang Daohuaxiang rice",
            99,
            [("5kg", 0), ("10kg", 90)],
            "New-harvest fragrant rice from Wuchang, Heilongjiang.",
        ),
        (
            "Lee Kum Kee",
            "Lee Kum Kee premium oyster sauce",
            22,
            [("510g", 0), ("510g x 3", 40)],
            "Rich oyster flavour for stir-fries and marinades.",
        ),
        (
            "Haitian",
            "Haitian superior light soy sauce",
            19,
            [("1.9L", 0), ("1.9L x 2", 16)],
            "Naturally brewed, 180 days of sun fermentation.",
        ),
        (
            "Oreo",
            "Oreo sandwich cookies",
            29,
            [("Original, 388g", 0), ("Matcha, 388g", 0)],
            "Crunchy chocolate cookies with a creamy filling.",
        ),
        (
            "Heytea",
            "Heytea jasmine green tea bags",
            59,
            [("20 bags", 0)],
            "Cold-brew jasmine green tea, ready in minutes.",
        ),
        (
            "Starbucks",
            "Starbucks medium roast coffee beans",
            118,
            [("Pike Place, 450g", 0), ("House Blend, 450g", 0)],
            "Whole beans, smooth and balanced.",
        ),
        (
            "Zespri",
            "Zespri SunGold kiwifruit",
            99,
            [("10 fruit, large", 0), ("22 fruit, jumbo", 120)],
            "Imported from New Zealand, sweet golden flesh, cold chain.",
        ),
        (
            "Goodfarmer",
            "Goodfarmer Hainan mangoes",
            59,
            [("2.5kg", 0), ("5kg", 50)],
            "Tree-ripened Guifei mangoes, shipped fresh.",
        ),
    ],
    "beauty": [
        (
            "Pechoin",
            "Pechoin hydrating toner and emulsion set",
            199,
            [("2 pieces", 0), ("3 pieces with cream", 90)],
            "Classic Shanghai skincare with herbal extracts.",
        ),
        (
            "Chando",
            "Chando Himalaya hydrating cream",
            238,
            [("50g", 0)],
            "Moisture for dry skin, with Himalayan plant extracts.",
        ),
        (
            "Marubi",
            "Marubi peptide eye cream",
            259,
            [("20g", 0), ("20g x 2", 220)],
            "Softens the look of fine lines around the eyes.",
        ),
        (
            "Proya",
            "Proya Ruby essence",
            329,
            [("30ml", 0), ("50ml", 150)],
            "Retinol and peptide serum for firmer-looking skin.",
        ),
        (
            "Winona",
            "Winona soothing repair cream",
            268,
            [("50g", 0), ("80g", 120)],
            "For sensitive skin, with purslane and sodium hyaluronate.",
        ),
        (
            "Florasis",
            "Florasis carved lipstick",
            219,
            [("Shade 201", 0), ("Shade 307", 0)],
            "Relief-carved lipstick inspired by classical Chinese art.",
        ),
        (
            "Perfect Diary",
            "Perfect Diary eyeshadow palette",
            129,
            [("Explorer, 16 shades", 0)],
            "Matte and shimmer shades, smooth and blendable.",
        ),
        (
            "L'Oreal Paris",
            "L'Oreal Paris Revitalift serum",
            339,
            [("30ml", 0), ("50ml", 160)],
            "1.5% pure hyaluronic acid, plumps and hydrates.",
        ),
        (
            "Estee Lauder",
            "Estee Lauder Advanced Night Repair",
            780,
            [("50ml", 0), ("100ml", 500)],
            "Night serum that strengthens the skin barrier.",
        ),
        (
            "Lancome",
            "Lancome Advanced Genifique serum",
            760,
            [("50ml", 0), ("100ml", 530)],
            "Pre- and probiotic fractions for visibly healthier skin.",
        ),
        (
            "SK-II",
            "SK-II Facial Treatment Essence",
            1070,
            [("160ml", 0), ("230ml", 470)],
            "Pitera essence, the brand's signature.",
        ),
        (
            "Shiseido",
            "Shiseido Ultimune power infusing concentrate",
            690,
            [("50ml", 0)],
            "Strengthens skin's defences, for all skin types.",
        ),
        (
            "Anessa",
            "Anessa perfect UV sunscreen SPF50+",
            198,
            [("60ml", 0), ("90ml", 60)],
            "Water and sweat resistant, lightweight milk texture.",
        ),
        (
            "Oral-B",
            "Oral-B iO5 electric toothbrush",
            599,
            [("Black", 0), ("Blush pink", 0)],
            "Magnetic drive, pressure sensor, 5 cleaning modes.",
        ),
        (
            "Philips",
            "Philips electric shaver 5000 series",
            599,
            [("Wet and dry", 0)],
            "SkinIQ technology, 45 self-sharpening blades.",
        ),
        (
            "Head & Shoulders",
            "Head & Shoulders anti-dandruff shampoo",
            69,
            [("750ml", 0), ("750ml x 2", 55)],
            "Clinically proven dandruff protection.",
        ),
    ],
    "home": [
        (
            "Midea",
            "Midea electric heater tower",
            399,
            [("Standard", 0), ("Remote and app", 100)],
            "Fast heating, tip-over protection, quiet night mode.",
        ),
        (
            "Xiaomi",
            "Mijia smart door lock 2",
            1299,
            [("Fingerprint", 0), ("Face recognition", 600)],
            "3D face unlock, anti-peep passcode, automatic locking.",
        ),
        (
            "Jingdezhen",
            "Jingdezhen ceramic dinnerware set",
            299,
            [("16 pieces", 0), ("26 pieces", 160)],
            "Underglaze ceramic, dishwasher and microwave safe.",
        ),
        ("Muji", "Muji aroma diffuser", 350, [("Large", 0)], "Ultrasonic diffuser with soft light, quiet operation."),
        (
            "Lock&Lock",
            "Lock&Lock glass food containers",
            129,
            [("Set of 6", 0), ("Set of 10", 80)],
            "Borosilicate glass, airtight lids, oven and microwave safe.",
        ),
        (
            "Supor",
            "Supor non-stick wok 32cm",
            189,
            [("Induction-ready", 0)],
            "Titanium non-stick coating, low-smoke cooking.",
        ),
        (
            "Zwilling",
            "Zwilling knife block set",
            899,
            [("5 pieces", 0), ("7 pieces", 400)],
            "German stainless steel, ergonomic handles.",
        ),
        (
            "Luolai",
            "Luolai silk-cotton duvet",
            699,
            [("200x230cm", 0), ("220x240cm", 200)],
            "Breathable filling for spring and autumn.",
        ),
        (
            "Fuanna",
            "Fuanna cotton bedding set",
            499,
            [("4 pieces, 1.5m bed", 0), ("4 pieces, 1.8m bed", 100)],
            "60-count long-staple cotton, soft and breathable.",
        ),
        (
            "Yeelight",
            "Yeelight smart ceiling light",
            599,
            [("Pro, 50cm", 0), ("Pro, 90cm", 400)],
            "Full-spectrum LED, works with Mi Home and HomeKit.",
        ),
        (
            "Xiaomi",
            "Mijia smart desk lamp 2",
            169,
            [("Standard", 0)],
            "Anti-glare LED, adjustable colour temperature.",
        ),
        (
            "Tupperware",
            "Tupperware insulated bottle",
            159,
            [("500ml Ocean blue", 0), ("500ml Sage", 0)],
            "Keeps drinks hot or cold for 12 hours.",
        ),
        (
            "Karcher",
            "Karcher window vacuum WV 6",
            799,
            [("Standard", 0)],
            "Streak-free windows, 100 minutes of runtime.",
        ),
        (
            "Ikea",
            "Ikea POANG armchair",
            699,
            [("Birch, beige cushion", 0), ("Black-brown, dark grey", 50)],
            "Layer-glued bent birch frame with a gentle bounce.",
        ),
        (
            "Sleemon",
            "Sleemon latex pillow",
            199,
            [("Standard", 0), ("Contour", 50)],
            "Natural latex, neck support, washable cover.",
        ),
        (
            "Deerma",
            "Deerma humidifier 5L",
            199,
            [("Standard", 0), ("UV sterilising", 80)],
            "Top-fill, quiet operation, 12-hour runtime.",
        ),
    ],
}

SELF_OPERATED_STORE = f"{RETAILER_NAME} Self-operated"
# Third-party marketplace sellers: the platform may never sell their products.
THIRD_PARTY_STORES = [
    "{brand} Official Flagship Store",
    "{brand} Authorised Store",
    "Golden Harbour Trading",
    "Shenzhen Quick Digital",
]


def catalog_specs() -> list[dict]:
    """Every product of the demo catalog as plain data, in a fixed order (deterministic)."""
    rng = random.Random(20261125)
    specs = []
    for category, lines in LINES.items():
        for line_no, (brand, name, base, variants, description) in enumerate(lines):
            for variant_no, (variant, delta) in enumerate(variants):
                # Most offers are the retailer's own; some variants are also (or only) sold by a
                # marketplace seller, which the platform may never sell.
                offers = ["self", "mkt"] if rng.random() < 0.2 else ["self"]
                for offer in offers:
                    tp = offer == "mkt" or rng.random() < 0.07
                    price = Decimal(base + delta)
                    if price < 200 and rng.random() < 0.5:
                        price -= Decimal("0.10")
                    if offer == "mkt":
                        price = (price * Decimal(rng.choice(["0.93", "0.97", "1.04"]))).quantize(Decimal("1"))
                    seller = rng.choice(THIRD_PARTY_STORES) if tp else SELF_OPERATED_STORE
                    sku = f"{category[:3].upper()}{line_no + 1:02d}{variant_no + 1}{'M' if offer == 'mkt' else ''}"
                    specs.append({
                        "sku": f"JD-{sku}",
                        "category": category,
                        "brand": brand,
                        "title": f"{name}, {variant}",
                        "description": description,
                        "price": max(price, Decimal("1")).quantize(Decimal("0.01")),
                        "third_party": tp,
                        "seller_name": seller.format(brand=brand),
                        "stock": rng.choice([3, 8, 25, 60, 120, 300, 800]) if rng.random() > 0.06 else 0,
                        "images": 3 if category in ("phones", "computers") else 2,
                    })  # fmt: skip
    return specs


def image_urls(sku: str, count: int) -> list[str]:
    return [f"{settings.MEDIA_URL}retailer/{sku.lower()}-{n}.jpg" for n in range(1, count + 1)]


def _ensure_images(spec: dict) -> int:
    drawn = 0
    for n in range(1, spec["images"] + 1):
        path = Path(settings.MEDIA_ROOT) / "retailer" / f"{spec['sku'].lower()}-{n}.jpg"
        if not path.exists():
            draw_product_image(path, category=spec["category"], brand=spec["brand"], variant=n - 1)
            drawn += 1
    return drawn


def seed_sandbox_catalog() -> dict:
    """Create the sandbox's categories and products once; redraw any missing pictures."""
    specs = catalog_specs()
    drawn = sum(_ensure_images(spec) for spec in specs)
    created = 0
    with transaction.atomic():
        categories = {}
        for code, name in CATEGORIES:
            categories[code], _ = SandboxCategory.objects.get_or_create(code=code, defaults={"name": name})
        existing = set(SandboxProduct.objects.values_list("sku", flat=True))
        new = [spec for spec in specs if spec["sku"] not in existing]
        if new:
            Seller = SandboxProduct.Seller
            first = take_seq(len(new))
            SandboxProduct.objects.bulk_create(
                SandboxProduct(
                    sku=spec["sku"],
                    category=categories[spec["category"]],
                    title=spec["title"],
                    brand=spec["brand"],
                    description=spec["description"],
                    price=spec["price"],
                    seller_type=Seller.THIRD_PARTY if spec["third_party"] else Seller.SELF_OPERATED,
                    seller_name=spec["seller_name"],
                    stock=spec["stock"],
                    image_urls=image_urls(spec["sku"], spec["images"]),
                    seq=first + i,
                )
                for i, spec in enumerate(new)
            )  # fmt: skip
            created = len(new)
    return {"products": len(specs), "created": created, "images_drawn": drawn}
