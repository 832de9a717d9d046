"""Names, places, pages and campaigns the demo world is made of (all fictional)."""

from __future__ import annotations

FIRST_NAMES = (
    "Anna", "Ben", "Clara", "David", "Elif", "Finn", "Greta", "Hamid", "Ines", "Jonas",
    "Katrin", "Lena", "Malik", "Nora", "Oskar", "Paula", "Quentin", "Rosa", "Sami", "Tessa",
    "Umar", "Vera", "Wim", "Xenia", "Yusuf", "Zoe", "Mia", "Leon", "Emma", "Noah", "Lina",
    "Theo", "Hanna", "Luca", "Sofia", "Jan", "Amira", "Felix", "Ida", "Karim",
)
LAST_NAMES = (
    "Schmidt", "Novak", "Rossi", "Dubois", "Jansen", "Kowalski", "Lindqvist", "Moreau",
    "Becker", "Yilmaz", "Fischer", "Garcia", "Hofmann", "Ivanova", "Keller", "Larsen",
    "Meyer", "Nielsen", "Okafor", "Petrov", "Quinn", "Richter", "Silva", "Tanaka", "Vogel",
    "Weber", "Zimmermann", "Brandt", "Costa", "Haas",
)
CITIES = (
    ("Hamburg", "DE"), ("Berlin", "DE"), ("Munich", "DE"), ("Cologne", "DE"),
    ("Leipzig", "DE"), ("Vienna", "AT"), ("Zurich", "CH"), ("Amsterdam", "NL"),
    ("Copenhagen", "DK"), ("Lyon", "FR"),
)
FREE_MAIL = ("mail.example", "post.example", "inbox.example")

# ---- the art-supply shop (B2C)
ART_COMPETITOR_DOMAINS = ("rival-art.example", "brushworks.example")
CREATIVE_OCCUPATIONS = ("artist", "illustrator", "designer", "art teacher", "architect")
OTHER_OCCUPATIONS = ("nurse", "engineer", "accountant", "retired", "shop owner", "developer",
                     "lawyer", "civil servant")
ART_PRODUCTS = (
    "/products/paint/oil/titanium-white", "/products/paint/acrylic/set-24",
    "/products/paint/watercolour/pan-12", "/products/paper/a4-300g", "/products/paper/a3-sketch",
    "/products/brushes/sable-round-6", "/products/brushes/synthetic-set", "/products/canvas/30x40",
    "/products/canvas/50x70", "/products/pencils/graphite-12", "/products/ink/sumi",
    "/products/easels/studio",
)
ART_STORES = ("/stores/hamburg", "/stores/berlin", "/stores/munich", "/stores")
ART_PAGES = ("/", "/sale", "/blog/colour-mixing", "/blog/stretching-canvas", "/about")
ART_CAREERS = ("/careers", "/careers/store-assistant-hamburg", "/careers/warehouse-berlin")
ART_TOPICS = ("painting", "drawing", "calligraphy", "printmaking", "watercolour")

# ---- the software vendor (B2B)
SOFTWARE_COMPETITOR_DOMAINS = ("rivalsoft.example", "leadforge.example")
INDUSTRIES_TARGET = ("software", "fintech", "e-commerce", "healthcare")
INDUSTRIES_OTHER = ("manufacturing", "logistics", "public sector", "education", "agriculture")
COMPANY_PARTS = (
    ("North", "Blue", "Bright", "Iron", "Silver", "Cedar", "Delta", "Nova", "Polar", "Quartz",
     "Harbor", "Summit", "Vertex", "Orbit", "Maple"),
    ("Labs", "Systems", "Analytics", "Health", "Pay", "Logistics", "Works", "Commerce", "Cloud",
     "Data", "Retail", "Bank", "Foods", "Motors", "Media"),
)
SENIORITY_TITLES = {
    "c-level": ("CMO", "CRO", "CEO", "COO"),
    "vp": ("VP Marketing", "VP Sales", "VP Revenue Operations", "VP Growth"),
    "director": ("Director of Demand Generation", "Sales Director", "Marketing Director"),
    "manager": ("Marketing Operations Manager", "Sales Manager", "CRM Manager",
                "Growth Manager"),
    "individual contributor": ("Marketing Specialist", "Sales Development Representative",
                               "Data Analyst", "Software Engineer", "Office Assistant"),
}
SOFTWARE_PAGES = ("/", "/product/scoring", "/product/integrations", "/product/segments",
                  "/about", "/security")
SOFTWARE_BLOG = ("/blog/what-is-lead-scoring", "/blog/mql-vs-sql", "/blog/decay-explained",
                 "/blog/b2b-buying-committee", "/blog/segment-integration")
SOFTWARE_DOCS = ("/docs/quickstart", "/docs/models", "/docs/api", "/docs/webhooks")
SOFTWARE_CASES = ("/customers/cedar-pay", "/customers/nova-health", "/customers/orbit-retail")
SOFTWARE_PRICING = ("/pricing", "/pricing/enterprise", "/pricing?plan=team")
SOFTWARE_CAREERS = ("/careers", "/careers/engineering", "/careers/account-executive")
SOFTWARE_TOPICS = ("lead scoring", "marketing automation", "revenue operations", "data quality")
WEBINAR_TOPICS = ("scoring-101", "from-mql-to-revenue", "account-based-marketing")
PLANS = (("team", 6_000), ("business", 18_000), ("enterprise", 60_000))
