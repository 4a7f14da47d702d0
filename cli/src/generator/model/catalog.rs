//! The generated catalog: tea, mugs, teapots and the like, in categories with variants; a
//! SKU's name, title, price, weight and marketplace ids.

use rand::rngs::StdRng;
use rand::Rng;

/// A catalog entry.
#[derive(Debug, Clone)]
pub(crate) struct Sku {
    pub(crate) name: String,
    pub(crate) title: String,
    pub(crate) price_cents: i64,
    pub(crate) grams: i64,
    pub(crate) asin: String,
    pub(crate) product_id: u64,
    pub(crate) variant_id: u64,
}

/// A product category of the generated catalog.
struct Category {
    /// SKU prefix (`TEA`).
    prefix: &'static str,
    /// What the product is, for titles.
    kind: &'static str,
    /// List price, cents.
    price_cents: i64,
    /// Shipping weight, grams.
    grams: i64,
    /// Variants: SKU code and title adjective.
    variants: &'static [(&'static str, &'static str)],
}

const CATEGORIES: &[Category] = &[
    Category {
        prefix: "TEA",
        kind: "loose leaf tea, 100 g",
        price_cents: 950,
        grams: 100,
        variants: &[
            ("EARLGREY", "Earl Grey"),
            ("SENCHA", "Sencha"),
            ("ASSAM", "Assam"),
            ("DARJEELING", "Darjeeling"),
            ("OOLONG", "Oolong"),
            ("ROOIBOS", "Rooibos"),
            ("CHAI", "Masala chai"),
            ("JASMINE", "Jasmine"),
        ],
    },
    Category {
        prefix: "MUG",
        kind: "stoneware mug, 350 ml",
        price_cents: 1400,
        grams: 300,
        variants: &[
            ("BLUE", "Blue"),
            ("WHITE", "White"),
            ("SAGE", "Sage"),
            ("RUST", "Rust"),
            ("BLACK", "Black"),
        ],
    },
    Category {
        prefix: "TEAPOT",
        kind: "teapot, 1 l",
        price_cents: 4800,
        grams: 1400,
        variants: &[
            ("CAST-IRON", "Cast iron"),
            ("GLASS", "Glass"),
            ("PORCELAIN", "Porcelain"),
            ("CLAY", "Clay"),
        ],
    },
    Category {
        prefix: "INFUSER",
        kind: "tea infuser",
        price_cents: 600,
        grams: 60,
        variants: &[
            ("STEEL", "Stainless steel"),
            ("SILICONE", "Silicone"),
            ("BAMBOO", "Bamboo"),
        ],
    },
    Category {
        prefix: "KETTLE",
        kind: "kettle",
        price_cents: 6900,
        grams: 1100,
        variants: &[
            ("GOOSENECK", "Gooseneck"),
            ("ELECTRIC", "Electric"),
            ("STOVETOP", "Stovetop"),
        ],
    },
    Category {
        prefix: "CANDLE",
        kind: "scented candle",
        price_cents: 3200,
        grams: 450,
        variants: &[
            ("CEDAR", "Cedar"),
            ("VANILLA", "Vanilla"),
            ("AMBER", "Amber"),
        ],
    },
    Category {
        prefix: "CADDY",
        kind: "tea caddy",
        price_cents: 1800,
        grams: 200,
        variants: &[("TIN", "Tin"), ("WOOD", "Wooden")],
    },
];

/// The catalog of `n` SKUs: category and variant by index, a price 80% to 150% of the list
/// price and an ASIN drawn from `rng`.
pub(super) fn skus(rng: &mut StdRng, n: usize) -> Vec<Sku> {
    (0..n)
        .map(|i| {
            let category = &CATEGORIES[i % CATEGORIES.len()];
            let (prefix, kind, price, grams) = (
                category.prefix,
                category.kind,
                category.price_cents,
                category.grams,
            );
            let variants = category.variants;
            let (code, adjective) = variants[(i / CATEGORIES.len()) % variants.len()];
            let factor = rng.random_range(80..=150);
            Sku {
                name: format!("{prefix}-{code}-{i:05}"),
                title: format!("{adjective} {kind}"),
                price_cents: price * factor / 100,
                grams,
                asin: format!("B0{:08X}", rng.random::<u32>()),
                product_id: 8_841_200_000_000 + i as u64,
                variant_id: 45_012_900_000_000 + i as u64,
            }
        })
        .collect()
}
