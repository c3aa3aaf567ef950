"""The topic taxonomy and community style cues of the synthetic short-video platform.

Words are plain lowercase English so a real text encoder sees real semantics. Every word
belongs to exactly one node (category, sub-category, fine topic, community style or
filler), which keeps text similarity hierarchical: two items of one fine topic share
its distinctive keywords, two items of one sub-category only the sub-category's shared
words, and so on up the tree.
"""

from __future__ import annotations

# category -> (shared category keywords, {sub-category -> (shared keywords, {fine topic -> keywords})})
TAXONOMY: dict[str, tuple[list[str], dict[str, tuple[list[str], dict[str, list[str]]]]]] = {
    "cooking": (
        ["recipe", "kitchen", "homemade", "delicious", "cook"],
        {
            "baking": (
                ["oven", "dough", "flour", "bake"],
                {
                    "sourdough": ["sourdough", "starter", "levain", "crumb", "ferment", "loaf", "scoring"],
                    "cupcakes": ["cupcake", "frosting", "sprinkles", "buttercream", "vanilla", "piping"],
                    "croissants": ["croissant", "laminated", "flaky", "pastry", "crescent", "butter"],
                    "pies": ["pie", "lattice", "pecan", "pumpkin", "crimped", "filling"],
                },
            ),
            "grilling": (
                ["grill", "charcoal", "barbecue", "smoky"],
                {
                    "brisket": ["brisket", "bark", "smoker", "rub", "tallow", "slicing"],
                    "burgers": ["burger", "patty", "cheeseburger", "smashed", "pickles", "ketchup"],
                    "skewers": ["skewer", "kebab", "souvlaki", "satay", "marinade", "peppers"],
                    "ribs": ["ribs", "spareribs", "molasses", "rack", "sticky", "mop"],
                },
            ),
            "asian": (
                ["wok", "soy", "ginger", "umami"],
                {
                    "ramen": ["ramen", "broth", "pork", "scallion", "miso", "noodles"],
                    "sushi": ["sushi", "nigiri", "wasabi", "salmon", "tuna", "seaweed"],
                    "dumplings": ["dumpling", "potsticker", "pleats", "wrappers", "steamer", "dipping"],
                    "curry": ["curry", "coconut", "turmeric", "lemongrass", "cilantro", "chili"],
                },
            ),
            "vegetarian": (
                ["vegetables", "plant", "greens", "vegan"],
                {
                    "salads": ["salad", "lettuce", "vinaigrette", "arugula", "croutons", "dressing"],
                    "tofu": ["tofu", "tempeh", "seitan", "pressed", "crispy", "cubes"],
                    "smoothies": ["smoothie", "banana", "berries", "blender", "kale", "yogurt"],
                    "soups": ["soup", "lentil", "minestrone", "chowder", "ladle", "simmer"],
                },
            ),
        },
    ),
    "travel": (
        ["trip", "travel", "journey", "destination", "wanderlust"],
        {
            "hiking": (
                ["trail", "hike", "backpack", "summit"],
                {
                    "mountains": ["mountain", "peak", "alpine", "ridge", "glacier", "altitude"],
                    "waterfalls": ["waterfall", "cascade", "plunge", "mist", "gorge", "creek"],
                    "camping": ["tent", "campfire", "sleeping", "lantern", "campsite", "marshmallow"],
                    "forests": ["forest", "redwood", "moss", "canopy", "fern", "woodland"],
                },
            ),
            "cities": (
                ["city", "downtown", "streets", "skyline"],
                {
                    "paris": ["paris", "eiffel", "louvre", "seine", "montmartre", "parisian"],
                    "tokyo": ["tokyo", "shibuya", "japan", "neon", "harajuku", "japanese"],
                    "london": ["london", "thames", "westminster", "british", "underground", "pub"],
                    "venice": ["venice", "gondola", "canal", "italian", "lagoon", "venetian"],
                },
            ),
            "beaches": (
                ["beach", "ocean", "sand", "sunset"],
                {
                    "surfing": ["surf", "surfboard", "waves", "swell", "wetsuit", "barrel"],
                    "snorkeling": ["snorkel", "reef", "coral", "fins", "tropical", "turtle"],
                    "islands": ["island", "palm", "hammock", "bungalow", "paradise", "ferry"],
                    "sailing": ["sailboat", "sail", "mast", "harbor", "anchor", "yacht"],
                },
            ),
            "driving": (
                ["road", "car", "drive", "highway"],
                {
                    "campervans": ["campervan", "van", "conversion", "bunk", "rooftop", "solar"],
                    "motorcycles": ["motorcycle", "helmet", "throttle", "biker", "touring", "leather"],
                    "routes": ["route", "map", "scenic", "detour", "miles", "gas"],
                    "deserts": ["desert", "dunes", "cactus", "canyon", "mesa", "arid"],
                },
            ),
        },
    ),
    "fitness": (
        ["workout", "gym", "fitness", "training", "exercise"],
        {
            "strength": (
                ["weights", "muscle", "lifting", "reps"],
                {
                    "deadlifts": ["deadlift", "barbell", "lockout", "grip", "posterior", "plates"],
                    "squats": ["squat", "quads", "depth", "knees", "glutes", "goblet"],
                    "pushups": ["pushup", "chest", "triceps", "plank", "floor", "bodyweight"],
                    "kettlebells": ["kettlebell", "swing", "snatch", "jerk", "turkish", "getup"],
                },
            ),
            "cardio": (
                ["heart", "sweat", "endurance", "calories"],
                {
                    "running": ["running", "marathon", "sprint", "pace", "jogging", "trainers"],
                    "cycling": ["cycling", "bicycle", "pedal", "saddle", "spin", "peloton"],
                    "swimming": ["swimming", "freestyle", "laps", "goggles", "pool", "stroke"],
                    "rowing": ["rowing", "rower", "oar", "ergometer", "regatta", "crew"],
                },
            ),
            "yoga": (
                ["yoga", "mat", "breath", "stretch"],
                {
                    "meditation": ["meditation", "mindfulness", "calm", "breathing", "stillness", "mantra"],
                    "flexibility": ["flexibility", "splits", "hamstrings", "mobility", "hips", "bend"],
                    "vinyasa": ["vinyasa", "flow", "downward", "sun", "salutation", "chaturanga"],
                    "pilates": ["pilates", "reformer", "core", "abs", "control", "toning"],
                },
            ),
            "nutrition": (
                ["diet", "meal", "protein", "macros"],
                {
                    "keto": ["keto", "ketosis", "carbs", "fat", "bacon", "avocado"],
                    "supplements": ["supplement", "creatine", "whey", "vitamins", "capsules", "dose"],
                    "prepping": ["containers", "batch", "prepping", "portions", "chicken", "broccoli"],
                    "fasting": ["fasting", "intermittent", "window", "hunger", "autophagy", "breakfast"],
                },
            ),
        },
    ),
    "music": (
        ["music", "song", "sound", "musician", "melody"],
        {
            "guitar": (
                ["guitar", "strings", "chords", "fretboard"],
                {
                    "acoustic": ["acoustic", "strumming", "fingerpicking", "capo", "folk", "ballad"],
                    "electric": ["electric", "amplifier", "distortion", "pedalboard", "riff", "solo"],
                    "bass": ["bass", "groove", "slap", "funk", "thumb", "bassline"],
                    "ukulele": ["ukulele", "hawaiian", "luau", "strum", "cheerful", "aloha"],
                },
            ),
            "production": (
                ["studio", "mixing", "beats", "producer"],
                {
                    "synths": ["synthesizer", "oscillator", "analog", "patch", "filter", "arpeggio"],
                    "drums": ["drums", "snare", "kick", "tom", "cymbal", "drumsticks"],
                    "vocals": ["vocals", "singing", "microphone", "harmony", "falsetto", "acapella"],
                    "mastering": ["mastering", "loudness", "compressor", "limiter", "equalizer", "stereo"],
                },
            ),
            "classical": (
                ["orchestra", "symphony", "composer", "concert"],
                {
                    "piano": ["piano", "keys", "sonata", "chopin", "grand", "nocturne"],
                    "violin": ["violin", "bow", "fiddle", "concerto", "rosin", "vibrato"],
                    "opera": ["opera", "aria", "tenor", "libretto", "diva", "stage"],
                    "choir": ["choir", "choral", "hymn", "alto", "ensemble", "chant"],
                },
            ),
            "dance": (
                ["dance", "choreography", "moves", "rhythm"],
                {
                    "hiphop": ["hiphop", "breakdance", "popping", "locking", "krump", "cypher"],
                    "ballet": ["ballet", "pointe", "tutu", "pirouette", "ballerina", "barre"],
                    "salsa": ["salsa", "bachata", "partner", "latin", "spins", "merengue"],
                    "tango": ["tango", "argentine", "embrace", "milonga", "dip", "passion"],
                },
            ),
        },
    ),
    "gaming": (
        ["game", "gaming", "gamer", "play", "controller"],
        {
            "strategy": (
                ["strategy", "tactics", "build", "economy"],
                {
                    "chess": ["chess", "checkmate", "gambit", "pawn", "bishop", "knight"],
                    "empires": ["empire", "conquest", "diplomacy", "turns", "kingdom", "settlers"],
                    "cards": ["deck", "mana", "shuffle", "rare", "trading", "cardboard"],
                    "puzzles": ["puzzle", "riddle", "sudoku", "crossword", "logic", "solved"],
                },
            ),
            "shooters": (
                ["shooter", "aim", "headshot", "loadout"],
                {
                    "royale": ["royale", "squad", "zone", "loot", "parachute", "victory"],
                    "sniping": ["sniper", "scope", "crosshair", "recoil", "bullet", "prone"],
                    "esports": ["esports", "tournament", "team", "overtime", "ranked", "caster"],
                    "arena": ["arena", "deathmatch", "frag", "railgun", "respawn", "spawn"],
                },
            ),
            "adventure": (
                ["quest", "lore", "hero", "dungeon"],
                {
                    "roleplaying": ["roleplaying", "leveling", "spells", "inventory", "mage", "party"],
                    "survival": ["survival", "crafting", "shelter", "zombies", "stamina", "resources"],
                    "platformers": ["platformer", "jump", "coins", "levels", "plumber", "mushrooms"],
                    "horror": ["horror", "jumpscare", "scary", "haunted", "monster", "darkness"],
                },
            ),
            "sandbox": (
                ["sandbox", "creative", "blocks", "building"],
                {
                    "castles": ["castle", "tower", "moat", "drawbridge", "medieval", "battlements"],
                    "farms": ["farm", "crops", "harvest", "tractor", "barn", "wheat"],
                    "circuits": ["circuit", "redstone", "piston", "contraption", "automatic", "switch"],
                    "villages": ["village", "villagers", "cottage", "market", "houses", "mayor"],
                },
            ),
        },
    ),
    "technology": (
        ["tech", "technology", "gadget", "device", "digital"],
        {
            "phones": (
                ["phone", "smartphone", "screen", "battery"],
                {
                    "cameras": ["lens", "zoom", "megapixel", "sensor", "bokeh", "photo"],
                    "foldables": ["foldable", "hinge", "crease", "flip", "fold", "flexible"],
                    "cases": ["case", "protector", "rugged", "silicone", "bumper", "shatter"],
                    "chargers": ["charger", "wireless", "cable", "charging", "watt", "adapter"],
                },
            ),
            "computers": (
                ["computer", "laptop", "workstation", "desktop"],
                {
                    "keyboards": ["keyboard", "mechanical", "switches", "keycaps", "typing", "clicky"],
                    "graphics": ["gpu", "graphics", "benchmark", "framerate", "overclock", "cooling"],
                    "monitors": ["monitor", "display", "ultrawide", "refresh", "resolution", "panel"],
                    "desks": ["desk", "setup", "shelf", "lighting", "ergonomic", "chair"],
                },
            ),
            "programming": (
                ["code", "coding", "developer", "software"],
                {
                    "python": ["python", "script", "library", "notebook", "automation", "module"],
                    "javascript": ["javascript", "browser", "frontend", "react", "website", "callback"],
                    "algorithms": ["algorithm", "sorting", "recursion", "complexity", "graph", "binary"],
                    "databases": ["database", "query", "table", "index", "schema", "rows"],
                },
            ),
            "robotics": (
                ["robot", "robotics", "motors", "machine"],
                {
                    "drones": ["drone", "propeller", "quadcopter", "aerial", "flight", "hover"],
                    "electronics": ["microcontroller", "breadboard", "soldering", "led", "wiring", "servo"],
                    "humanoids": ["humanoid", "android", "walking", "balance", "bipedal", "gripper"],
                    "vacuums": ["vacuum", "cleaning", "mopping", "dock", "suction", "dustbin"],
                },
            ),
        },
    ),
    "pets": (
        ["pet", "pets", "animal", "cute", "adorable"],
        {
            "dogs": (
                ["dog", "puppy", "leash", "paws"],
                {
                    "obedience": ["obedience", "sit", "treats", "clicker", "recall", "heel"],
                    "retrievers": ["retriever", "labrador", "fetch", "tennis", "fluffy", "slobber"],
                    "grooming": ["grooming", "bath", "shampoo", "haircut", "brushing", "trim"],
                    "agility": ["agility", "hurdles", "weave", "tunnel", "obstacle", "course"],
                },
            ),
            "cats": (
                ["cat", "kitten", "meow", "purr"],
                {
                    "rescue": ["rescue", "adoption", "foster", "stray", "rescued", "rehome"],
                    "litter": ["litter", "scoop", "clumping", "box", "odor", "tray"],
                    "scratching": ["scratching", "scratcher", "claws", "sisal", "post", "carpet"],
                    "breeds": ["persian", "siamese", "ragdoll", "sphynx", "bengal", "breed"],
                },
            ),
            "aquariums": (
                ["aquarium", "fish", "tank", "water"],
                {
                    "goldfish": ["goldfish", "bowl", "fancy", "oranda", "koi", "pond"],
                    "saltwater": ["saltwater", "clownfish", "anemone", "salinity", "skimmer", "polyps"],
                    "aquascaping": ["aquascape", "driftwood", "substrate", "aquatic", "stem", "rooted"],
                    "shrimp": ["shrimp", "cherry", "molting", "colony", "breeding", "tiny"],
                },
            ),
            "exotic": (
                ["exotic", "unusual", "care", "habitat"],
                {
                    "reptiles": ["reptile", "gecko", "lizard", "terrarium", "basking", "scales"],
                    "birds": ["parrot", "bird", "feathers", "cockatiel", "perch", "chirping"],
                    "rabbits": ["rabbit", "bunny", "hay", "carrots", "hutch", "binky"],
                    "hamsters": ["hamster", "cage", "bedding", "cheeks", "gerbil", "burrow"],
                },
            ),
        },
    ),
    "fashion": (
        ["fashion", "style", "outfit", "clothes", "wear"],
        {
            "streetwear": (
                ["streetwear", "hype", "hoodie", "fit"],
                {
                    "sneakers": ["sneakers", "kicks", "resale", "soles", "laces", "collection"],
                    "caps": ["cap", "snapback", "beanie", "hat", "brim", "headwear"],
                    "denim": ["denim", "jeans", "selvedge", "raw", "indigo", "fade"],
                    "jackets": ["jacket", "bomber", "puffer", "windbreaker", "varsity", "zipper"],
                },
            ),
            "makeup": (
                ["makeup", "beauty", "face", "cosmetics"],
                {
                    "lipstick": ["lipstick", "gloss", "matte", "lips", "swatch", "nude"],
                    "eyeliner": ["eyeliner", "mascara", "lashes", "eyeshadow", "wing", "smokey"],
                    "foundation": ["foundation", "concealer", "contour", "blush", "primer", "sponge"],
                    "skincare": ["skincare", "serum", "moisturizer", "sunscreen", "cleanser", "acne"],
                },
            ),
            "accessories": (
                ["accessories", "jewelry", "wrist", "shiny"],
                {
                    "watches": ["wristwatch", "chronograph", "dial", "strap", "bezel", "movement"],
                    "necklaces": ["necklace", "pendant", "chain", "gold", "silver", "charm"],
                    "handbags": ["handbag", "purse", "tote", "shoulder", "satchel", "wallet"],
                    "sunglasses": ["sunglasses", "shades", "aviator", "polarized", "frames", "tinted"],
                },
            ),
            "sewing": (
                ["sewing", "fabric", "stitch", "pattern"],
                {
                    "quilting": ["quilt", "quilting", "patchwork", "batting", "squares", "binding"],
                    "embroidery": ["embroidery", "floss", "thread", "satin", "stitches", "needlework"],
                    "knitting": ["knitting", "yarn", "needles", "sweater", "purl", "wool"],
                    "alterations": ["alteration", "hemming", "tailor", "seam", "fitting", "tailored"],
                },
            ),
        },
    ),
    "home": (
        ["home", "house", "room", "interior", "decor"],
        {
            "renovation": (
                ["renovation", "tools", "project", "repair"],
                {
                    "woodworking": ["woodworking", "lumber", "chisel", "sawdust", "joinery", "workbench"],
                    "plumbing": ["plumbing", "pipe", "leak", "faucet", "wrench", "drain"],
                    "walls": ["drywall", "plaster", "paint", "roller", "spackle", "wallpaper"],
                    "tiling": ["tile", "tiles", "grout", "backsplash", "trowel", "porcelain"],
                },
            ),
            "gardening": (
                ["garden", "gardening", "soil", "grow"],
                {
                    "tomatoes": ["tomato", "tomatoes", "vine", "trellis", "ripe", "staking"],
                    "succulents": ["succulent", "succulents", "aloe", "echeveria", "propagation", "terracotta"],
                    "roses": ["rose", "roses", "bloom", "pruning", "thorns", "petals"],
                    "composting": ["compost", "composting", "worms", "scraps", "mulch", "humus"],
                },
            ),
            "organizing": (
                ["organize", "organizing", "tidy", "clutter"],
                {
                    "closets": ["closet", "hangers", "wardrobe", "organizer", "drawers", "shelves"],
                    "pantry": ["pantry", "jars", "labels", "spices", "bins", "canned"],
                    "laundry": ["laundry", "detergent", "stains", "washer", "dryer", "ironing"],
                    "decluttering": ["declutter", "decluttering", "donate", "purge", "keep", "simplify"],
                },
            ),
            "furniture": (
                ["furniture", "design", "wood", "assemble"],
                {
                    "sofas": ["sofa", "couch", "cushions", "sectional", "velvet", "recliner"],
                    "beds": ["bed", "mattress", "headboard", "pillows", "sheets", "duvet"],
                    "lamps": ["lamp", "bulb", "lampshade", "dimmer", "glow", "sconce"],
                    "rugs": ["rug", "rugs", "woven", "jute", "runner", "tufted"],
                },
            ),
        },
    ),
    "science": (
        ["science", "experiment", "scientist", "research", "discovery"],
        {
            "space": (
                ["space", "astronomy", "universe", "cosmic"],
                {
                    "planets": ["planet", "mars", "jupiter", "saturn", "orbit", "rings"],
                    "telescopes": ["telescope", "stargazing", "nebula", "galaxy", "eyepiece", "astrophotography"],
                    "rockets": ["rocket", "launch", "booster", "liftoff", "thrust", "payload"],
                    "stars": ["star", "supernova", "pulsar", "quasar", "stellar", "fusion"],
                },
            ),
            "chemistry": (
                ["chemistry", "reaction", "molecules", "lab"],
                {
                    "elements": ["element", "periodic", "atom", "sodium", "metals", "isotope"],
                    "combustion": ["explosion", "combustion", "thermite", "sparks", "flammable", "ignite"],
                    "crystals": ["crystal", "crystals", "geode", "quartz", "amethyst", "mineral"],
                    "slime": ["slime", "glue", "borax", "gooey", "stretchy", "activator"],
                },
            ),
            "biology": (
                ["biology", "evolution", "cells", "organism"],
                {
                    "microscopes": ["microscope", "microbes", "bacteria", "magnified", "specimen", "slide"],
                    "insects": ["insect", "beetle", "butterfly", "ants", "bees", "caterpillar"],
                    "dinosaurs": ["dinosaur", "fossil", "rex", "jurassic", "paleontology", "bones"],
                    "marine": ["marine", "whale", "dolphin", "shark", "octopus", "jellyfish"],
                },
            ),
            "physics": (
                ["physics", "energy", "force", "theory"],
                {
                    "magnets": ["magnet", "magnetic", "magnetism", "ferrofluid", "poles", "attraction"],
                    "optics": ["optics", "prism", "laser", "refraction", "rainbow", "mirror"],
                    "electricity": ["electricity", "voltage", "tesla", "lightning", "coil", "current"],
                    "quantum": ["quantum", "particle", "entanglement", "superposition", "photon", "uncertainty"],
                },
            ),
        },
    ),
    "sports": (
        ["sports", "athlete", "match", "season", "score"],
        {
            "football": (
                ["football", "soccer", "goal", "pitch"],
                {
                    "goalkeeping": ["goalkeeper", "save", "gloves", "penalty", "dive", "crossbar"],
                    "dribbling": ["dribble", "dribbling", "nutmeg", "feint", "footwork", "winger"],
                    "transfers": ["transfer", "signing", "contract", "striker", "midfielder", "club"],
                    "stadiums": ["stadium", "chants", "ultras", "supporters", "crowd", "anthem"],
                },
            ),
            "basketball": (
                ["basketball", "hoop", "court", "layup"],
                {
                    "dunks": ["dunk", "slam", "dunking", "rim", "vertical", "poster"],
                    "shooting": ["jumper", "threes", "arc", "splash", "range", "swish"],
                    "crossovers": ["crossover", "handles", "ankles", "hesitation", "stepback", "dribbles"],
                    "streetball": ["streetball", "playground", "pickup", "asphalt", "outdoor", "mixtape"],
                },
            ),
            "combat": (
                ["combat", "fight", "fighter", "martial"],
                {
                    "boxing": ["boxing", "boxer", "jab", "uppercut", "sparring", "ring"],
                    "wrestling": ["wrestling", "takedown", "grappling", "singlet", "pin", "suplex"],
                    "karate": ["karate", "dojo", "belt", "kata", "sensei", "chop"],
                    "fencing": ["fencing", "foil", "epee", "sabre", "lunge", "parry"],
                },
            ),
            "action": (
                ["action", "adrenaline", "stunts", "tricks"],
                {
                    "skateboarding": ["skateboard", "skatepark", "kickflip", "ollie", "halfpipe", "skater"],
                    "snowboarding": ["snowboard", "snowboarding", "powder", "slopes", "resort", "chairlift"],
                    "climbing": ["climbing", "boulder", "chalk", "crimp", "belay", "harness"],
                    "parkour": ["parkour", "vault", "rooftops", "freerunning", "flips", "precision"],
                },
            ),
        },
    ),
    "art": (
        ["art", "artist", "artwork", "gallery", "masterpiece"],
        {
            "drawing": (
                ["drawing", "sketch", "pencil", "sketchbook"],
                {
                    "portraits": ["portrait", "likeness", "proportions", "eyes", "shading", "realistic"],
                    "anime": ["anime", "manga", "chibi", "otaku", "panels", "inking"],
                    "calligraphy": ["calligraphy", "lettering", "nib", "ink", "cursive", "flourish"],
                    "cartoons": ["cartoon", "doodle", "caricature", "comic", "mascot", "goofy"],
                },
            ),
            "painting": (
                ["painting", "canvas", "brush", "palette"],
                {
                    "watercolor": ["watercolor", "wash", "bleed", "pigment", "wet", "granulation"],
                    "oils": ["oil", "oils", "impasto", "linseed", "glazing", "turpentine"],
                    "acrylics": ["acrylic", "pouring", "fluid", "swipe", "abstract", "dutch"],
                    "murals": ["mural", "graffiti", "spraypaint", "wall", "tagging", "stencil"],
                },
            ),
            "crafts": (
                ["craft", "crafts", "handmade", "supplies"],
                {
                    "pottery": ["pottery", "clay", "wheel", "kiln", "glaze", "throwing"],
                    "origami": ["origami", "crane", "folded", "kirigami", "modular", "tessellation"],
                    "candles": ["candle", "candles", "wax", "wick", "scented", "paraffin"],
                    "resin": ["resin", "epoxy", "mold", "bubbles", "coaster", "cure"],
                },
            ),
            "photography": (
                ["photography", "photographer", "shot", "camera"],
                {
                    "landscapes": ["landscape", "golden", "hour", "tripod", "vista", "horizon"],
                    "film": ["film", "darkroom", "negatives", "grain", "developing", "roll"],
                    "candid": ["candid", "strangers", "urban", "moments", "sidewalk", "shutter"],
                    "macro": ["macro", "closeup", "dewdrops", "details", "magnification", "focusing"],
                },
            ),
        },
    ),
}

# Collaborative communities are defined by *how* videos are made and watched, not by what
# they are about; their style words leak into text only weakly, so most of the community
# signal has to come from co-consumption.
COMMUNITY_STYLES: list[tuple[str, list[str]]] = [
    ("asmr", ["asmr", "whisper", "tingles", "soothing"]),
    ("minimalist", ["minimalist", "simple", "clean", "minimal"]),
    ("budget", ["budget", "cheap", "affordable", "thrifty"]),
    ("luxury", ["luxury", "premium", "expensive", "elegant"]),
    ("retro", ["retro", "vintage", "nostalgia", "throwback"]),
    ("kids", ["kids", "children", "family", "playtime"]),
    ("speedrun", ["speedrun", "fast", "quick", "record"]),
    ("cozy", ["cozy", "warm", "blanket", "snug"]),
    ("vlog", ["vlog", "daily", "routine", "life"]),
    ("tutorial", ["tutorial", "beginner", "guide", "lesson"]),
    ("comedy", ["comedy", "funny", "prank", "hilarious"]),
    ("challenge", ["challenge", "dare", "attempt", "bet"]),
    ("review", ["review", "honest", "rating", "verdict"]),
    ("aesthetic", ["aesthetic", "pastel", "dreamy", "soft"]),
    ("extreme", ["extreme", "insane", "massive", "epic"]),
    ("nerdy", ["nerdy", "analysis", "data", "deep"]),
    ("wholesome", ["wholesome", "kind", "heartwarming", "gentle"]),
    ("motivational", ["motivation", "mindset", "discipline", "grind"]),
    ("lofi", ["lofi", "chill", "relaxing", "mellow"]),
    ("documentary", ["documentary", "history", "narrated", "archive"]),
    ("sustainable", ["sustainable", "eco", "recycled", "reusable"]),
    ("unboxing", ["unboxing", "haul", "package", "opening"]),
    ("student", ["student", "college", "dorm", "exam"]),
    ("mystery", ["mystery", "secret", "hidden", "reveal"]),
]

# Topic-free glue words: they make texts read like speech without carrying topic signal.
FILLER_WORDS: list[str] = [
    "the", "a", "my", "this", "with", "and", "for", "to", "of", "in", "on", "how", "i", "you",
    "we", "it", "is", "so", "just", "really", "today", "here", "what", "some", "more", "very",
    "all", "let", "me", "your", "our", "new", "best", "first", "time", "got", "see", "love",
    "try", "make", "look", "at", "from", "when", "now", "part", "one", "two",
]


def community_name(index: int) -> str:
    """The truth label of community ``index``, e.g. ``c07-cozy``."""
    return f"c{index:02d}-{COMMUNITY_STYLES[index][0]}"


def community_names() -> list[str]:
    return [community_name(i) for i in range(len(COMMUNITY_STYLES))]


def fine_topics() -> list[tuple[str, str, str]]:
    """Every (category, sub-category, fine topic), in a stable order that defines topic ids."""
    return [
        (category, subcategory, topic)
        for category, (_, subcategories) in TAXONOMY.items()
        for subcategory, (_, topics) in subcategories.items()
        for topic in topics
    ]
