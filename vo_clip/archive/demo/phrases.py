"""The words proposals use, per scene kind: the vocabulary a text encoder learns from.

Each kind has objects and phenomena (what a PAPERCLIP summary lists first), science use
cases (what it lists second), title topics and opening sentences. Phrasings mix the
astronomer's terms, synonyms, physical processes and the way a curious non-specialist
would put it, so that a model trained on these captions has met many ways of asking for
the same picture. Some obvious everyday words are kept out on purpose (see
``HELD_OUT_PARAPHRASES`` in :mod:`.captions`): evaluation asks for them and expects the
model to generalise.

Sentence templates may use ``{obj}`` (an object phrase of the kind) and ``{use}`` (a
use-case phrase of the kind).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KindWords", "WORDS"]


@dataclass(frozen=True)
class KindWords:
    objects: tuple[str, ...]
    uses: tuple[str, ...]
    topics: tuple[str, ...]
    openings: tuple[str, ...]


WORDS: dict[str, KindWords] = {
    "globular_cluster": KindWords(
        objects=(
            "globular clusters", "Galactic globular clusters", "old stellar populations",
            "multiple stellar populations", "blue stragglers", "horizontal branch stars",
            "red giant branch", "main-sequence turnoff", "white dwarf cooling sequence",
            "millisecond pulsars", "dense stellar cores", "core-collapsed clusters",
            "a dense spherical cluster of very old stars", "hundreds of thousands of stars",
            "metal-poor halo clusters", "intermediate-mass black hole candidates",
            "cataclysmic variables", "tidal tails of star clusters",
            "a tightly bound spherical system of stars",
        ),
        uses=(
            "absolute age dating", "proper-motion measurements", "cluster dynamics",
            "stellar evolution of low-mass stars", "dense-field photometry",
            "chemical enrichment history", "distance scale calibration",
            "mass segregation studies", "internal kinematics", "binary fraction measurement",
            "searches for central black holes", "testing stellar evolution models",
            "assembly history of the Milky Way halo",
        ),
        topics=(
            "Multiple Populations in Globular Clusters", "The Cores of Dense Star Clusters",
            "White Dwarf Ages of Old Clusters", "Blue Stragglers and Stellar Collisions",
            "Proper Motions in Globular Clusters", "The Oldest Stars in the Milky Way",
            "Black Holes in Globular Cluster Cores", "Deep Photometry of Metal-Poor Clusters",
        ),
        openings=(
            "Globular clusters are among the oldest objects in the Galaxy and set a lower limit "
            "on its age.",
            "The cores of {obj} are laboratories for stellar collisions and binary interactions.",
            "Precise photometry has revealed that {obj} host more than one generation of stars.",
            "A globular cluster packs hundreds of thousands of stars into a few parsecs.",
            "The oldest stars of massive clusters still hold clues to how the Galactic halo "
            "assembled.",
            "Dense stellar systems such as {obj} are ideal places to look for the products of "
            "close encounters.",
        ),
    ),
    "dwarf_galaxy": KindWords(
        objects=(
            "dwarf galaxies", "dwarf spheroidal galaxies", "dwarf irregular galaxies",
            "ultra-faint dwarf galaxies", "Local Group dwarfs", "satellite galaxies",
            "resolved stellar populations", "low surface brightness galaxies",
            "blue compact dwarf galaxies", "gas-rich dwarfs", "a small faint galaxy",
            "the smallest galaxies", "metal-poor star-forming dwarfs",
            "a tiny companion of a larger galaxy", "tip of the red giant branch stars",
            "red clump stars", "isolated dwarf galaxies",
        ),
        uses=(
            "star formation histories", "color-magnitude diagram analysis",
            "tip of the red giant branch distances", "dark matter content of small haloes",
            "the missing satellites problem", "chemical evolution at low metallicity",
            "reionization-era quenching", "structural parameters of faint systems",
            "testing galaxy formation at the smallest scales", "proper motions of satellites",
            "stellar feedback in low-mass galaxies",
        ),
        topics=(
            "Star Formation Histories of Local Group Dwarfs", "The Faintest Satellites",
            "Resolved Stars in Nearby Dwarf Galaxies", "Quenching of Dwarf Galaxies",
            "Dwarf Irregulars at the Edge of the Local Group", "Blue Compact Dwarfs",
            "Low-Mass Galaxies as Dark Matter Probes", "The Smallest Galaxies Resolved",
        ),
        openings=(
            "Dwarf galaxies are the most common galaxies and the building blocks of larger "
            "systems.",
            "The {obj} of the Local Group can be resolved into individual stars down to the "
            "oldest main sequence.",
            "Because they are dominated by dark matter, {obj} are sensitive probes of its nature.",
            "Small, faint galaxies record how star formation proceeds in shallow potential wells.",
            "Many {obj} stopped forming stars early, possibly because of reionization.",
        ),
    ),
    "supernova_remnant_ring": KindWords(
        objects=(
            "supernova remnants", "SN 1987A", "circumstellar ring", "equatorial ring",
            "hot spots on the inner ring", "outer rings", "supernova ejecta",
            "shock interaction", "the expanding debris of a stellar blast",
            "a star that blew itself apart", "Balmer-dominated shocks",
            "young supernova remnant in the Large Magellanic Cloud", "reverse shock",
            "circumstellar material", "an hourglass nebula of ring structures",
            "thin shell of shocked gas", "core-collapse supernova",
        ),
        uses=(
            "shock physics", "evolution of the ejecta", "light curves of the hot spots",
            "mass-loss history of the progenitor", "expansion velocity measurements",
            "nucleosynthesis yields", "searches for a compact remnant",
            "monitoring the ring brightening", "dust formation in ejecta",
            "interaction with circumstellar gas", "progenitor identification",
        ),
        topics=(
            "The Evolving Rings of SN 1987A", "Hot Spots and Shocks", "Young Supernova Remnants",
            "Ejecta and Circumstellar Interaction", "Balmer Shocks in the Magellanic Clouds",
            "The Death of a Massive Star", "Supernova Remnant Monitoring",
        ),
        openings=(
            "SN 1987A is the nearest supernova observed in centuries and a unique laboratory for "
            "shock physics.",
            "The blast wave is now overtaking the dense gas of the circumstellar ring.",
            "Bright spots along the inner ring appear as the shock meets dense clumps of gas.",
            "The debris of a massive star that ended its life in a supernova is still expanding.",
            "Young remnants reveal how supernovae enrich and heat their surroundings.",
        ),
    ),
    "strong_lensing": KindWords(
        objects=(
            "strong gravitational lenses", "Einstein rings", "lensed arcs", "lensed quasars",
            "quadruply imaged quasars", "massive elliptical lens galaxies",
            "gravitationally magnified background galaxies", "multiple images",
            "galaxy-galaxy lenses", "Einstein crosses",
            "a galaxy bending light from another one behind it",
            "light from a distant galaxy stretched into a ring",
            "lensed quasars with measured delays",
            "lensed submillimetre galaxies", "double-source-plane lenses",
        ),
        uses=(
            "lens modelling", "measuring the Hubble constant from lensing delays",
            "mass profiles of elliptical galaxies", "dark matter substructure detection",
            "magnified views of high-redshift galaxies", "testing general relativity",
            "stellar initial mass function constraints", "source reconstruction",
            "inner density slopes of galaxies", "flux-ratio anomalies",
        ),
        topics=(
            "A Survey of Galaxy-Scale Strong Lenses", "Einstein Rings as Mass Probes",
            "Lensed Quasars and the Expansion Rate", "Substructure in Lens Galaxies",
            "Magnified Views of Distant Galaxies", "Imaging of New Lens Candidates",
            "The Mass Distribution of Early-Type Lenses",
        ),
        openings=(
            "When a massive galaxy lies in front of a distant source, gravity bends the light "
            "into arcs or a ring.",
            "Strong lensing provides the most precise measurements of galaxy masses at "
            "cosmological distances.",
            "High-resolution imaging is essential to model {obj} and separate the lens from the "
            "lensed source.",
            "Multiply imaged quasars let the expansion rate be measured from delays between the "
            "images.",
            "Gravitational lenses act as natural telescopes that magnify faint background "
            "galaxies.",
        ),
    ),
    "galaxy_cluster": KindWords(
        objects=(
            "galaxy clusters", "brightest cluster galaxies", "early-type cluster members",
            "the red sequence", "intracluster light", "cluster cores",
            "hundreds of galaxies bound by gravity", "a giant elliptical at the centre of a group",
            "galaxy groups", "cluster ellipticals and lenticulars",
            "ram-pressure stripped galaxies",
            "jellyfish galaxies", "high-redshift clusters", "fossil groups",
            "the largest gravitationally bound structures",
        ),
        uses=(
            "cluster galaxy evolution", "morphology-density relation",
            "build-up of the brightest cluster galaxies", "intracluster light measurements",
            "environmental quenching", "cluster mass calibration", "cluster cosmology",
            "fundamental plane studies", "stellar populations of early-type galaxies",
            "galaxy harassment and stripping",
        ),
        topics=(
            "Galaxy Evolution in Rich Clusters", "The Growth of Brightest Cluster Galaxies",
            "Intracluster Light in Massive Clusters", "Morphologies in Distant Clusters",
            "Jellyfish Galaxies and Ram Pressure", "The Red Sequence at High Redshift",
            "Environment and the Quenching of Star Formation",
        ),
        openings=(
            "Galaxy clusters are the largest gravitationally bound structures and trace the "
            "growth of the density field.",
            "The dense environment of rich clusters transforms the galaxies that fall into them.",
            "At the centres of clusters, the brightest galaxies grow by accreting smaller "
            "neighbours.",
            "A diffuse glow of stars stripped from member galaxies fills the cores of rich "
            "clusters.",
            "Comparing cluster members with field galaxies isolates the effect of environment on "
            "galaxy evolution.",
        ),
    ),
    "interstellar_medium": KindWords(
        objects=(
            "interstellar medium", "diffuse ionized gas", "dust lanes", "filamentary structure",
            "molecular clouds", "dark clouds", "Bok globules", "reflection nebulae",
            "interstellar dust", "HII regions", "shock fronts in the interstellar gas",
            "cirrus clouds", "gas and dust between the stars", "turbulent gas",
            "dark patches blocking background starlight", "light echoes",
            "Herbig-Haro outflows interacting with ambient gas",
        ),
        uses=(
            "dust extinction mapping", "interstellar turbulence", "grain properties",
            "ionization structure", "pressure balance in the interstellar gas",
            "magnetic field geometry", "cloud collapse conditions", "emission-line diagnostics",
            "structure functions of turbulence", "scattering by dust grains",
            "the life cycle of interstellar matter",
        ),
        topics=(
            "Filaments in the Interstellar Medium", "Dark Clouds and Dust Extinction",
            "The Structure of Diffuse Ionized Gas", "Turbulence in Molecular Clouds",
            "Globules and the Onset of Collapse", "Reflection Nebulae and Dust Grains",
            "Mapping Interstellar Dust in the Galactic Plane",
        ),
        openings=(
            "The space between the stars is filled with gas and dust in a turbulent, filamentary "
            "web.",
            "High-resolution images of {obj} resolve structure down to the scale where clouds "
            "fragment.",
            "Dust grains absorb and scatter starlight, leaving dark clouds silhouetted against "
            "the background.",
            "The interstellar medium links the death of one generation of stars to the birth of "
            "the next.",
            "Narrow-band imaging of {obj} traces the ionization and shock structure of the gas.",
        ),
    ),
    "dark_matter_cluster_lensing": KindWords(
        objects=(
            "dark matter", "massive galaxy clusters", "giant arcs", "weak lensing shear",
            "multiply imaged galaxies", "arclets", "cluster mass distribution",
            "merging clusters", "dark matter halo", "strong-lensing clusters",
            "distorted background galaxies", "critical curves", "substructure in the dark matter",
            "matter that does not emit light", "the mass of a cluster traced by bent light",
            "Frontier Fields-like clusters", "bullet-like cluster collisions",
        ),
        uses=(
            "mapping the dark matter distribution", "weak-lensing mass reconstruction",
            "strong-lensing mass models", "constraints on the self-interaction of dark matter",
            "concentration-mass relation", "magnified high-redshift galaxy searches",
            "testing cold dark matter", "cluster mass profiles",
            "offsets between gas, galaxies and mass",
            "cosmological parameter constraints",
        ),
        topics=(
            "Mapping Dark Matter in Massive Clusters", "Giant Arcs and Cluster Mass Models",
            "Weak Lensing of Merging Clusters", "The Nature of Dark Matter from Cluster Collisions",
            "Strong and Weak Lensing Mass Profiles", "Lensing Clusters as Gravitational Telescopes",
            "Dark Matter Substructure in Cluster Cores",
        ),
        openings=(
            "Most of the mass in galaxy clusters is dark matter, detectable only through its "
            "gravity.",
            "The dark matter of massive clusters bends the light of background galaxies into arcs "
            "and multiple images.",
            "Gravitational lensing is the most direct way to measure the mass of galaxy clusters.",
            "Colliding clusters separate the collisional gas from the collisionless dark matter.",
            "Precise shapes of thousands of background galaxies reveal where the dark matter lies.",
        ),
    ),
    "spiral_galaxy": KindWords(
        objects=(
            "spiral galaxies", "barred spiral galaxies", "grand-design spirals",
            "flocculent spirals", "spiral arms", "galactic bars", "HII regions in spiral arms",
            "dust lanes along the arms", "nearby disc galaxies", "Cepheid variables",
            "star-forming discs", "galactic bulges and pseudobulges", "nuclear rings",
            "a galaxy like our own Milky Way",
            "a rotating disc of stars, gas and dust with curved arms",
            "face-on spirals", "young star clusters in the disc",
        ),
        uses=(
            "Cepheid distances", "Hubble constant calibration", "star formation in spiral arms",
            "secular evolution driven by bars", "spiral density wave theory",
            "resolved stellar populations",
            "dust attenuation", "supernova host environments", "bulge formation",
            "gas inflow along bars", "cluster formation efficiency",
        ),
        topics=(
            "Star Formation in Nearby Spirals", "Bars and the Secular Evolution of Discs",
            "Cepheids in Supernova Host Galaxies", "The Anatomy of Spiral Arms",
            "A Legacy Survey of Nearby Disc Galaxies", "Young Clusters in Spiral Discs",
            "Nuclear Rings in Barred Galaxies",
        ),
        openings=(
            "Spiral galaxies like the Milky Way form most of the stars in the present epoch.",
            "The arms of {obj} are sites of intense star formation traced by young clusters and "
            "HII regions.",
            "Bars drive gas towards the centres of {obj} and reshape their bulges.",
            "Nearby {obj} can be resolved into individual stars, clusters and dust lanes.",
            "Cepheid variables in nearby spirals anchor the extragalactic distance ladder.",
        ),
    ),
    "lyman_alpha_high_z": KindWords(
        objects=(
            "Lyman-alpha emitters", "high-redshift galaxies", "Lyman-break galaxies",
            "protoclusters", "Lyman-alpha blobs", "reionization-era galaxies",
            "faint compact star-forming galaxies", "narrow-band excess sources",
            "galaxies at redshift six and beyond", "dropout galaxies",
            "some of the first galaxies",
            "tiny faint galaxies seen as they were billions of years ago",
            "extended Lyman-alpha haloes", "young low-mass galaxies",
        ),
        uses=(
            "the epoch of reionization", "Lyman-alpha luminosity function",
            "escape of ionizing photons",
            "clustering of high-redshift galaxies", "sizes and morphologies of faint galaxies",
            "the neutral fraction of the intergalactic medium",
            "rest-frame ultraviolet continuum slopes",
            "star formation rate density at high redshift", "protocluster identification",
            "galaxy assembly in the first billion years",
        ),
        topics=(
            "Lyman-Alpha Emitters in the Reionization Era", "Compact Galaxies at Redshift Seven",
            "A Protocluster at High Redshift", "Resolving Lyman-Alpha Haloes",
            "The Faintest Galaxies During Reionization", "Dropout Galaxies in Deep Imaging",
            "Sizes of Young Galaxies in the Early Epoch",
        ),
        openings=(
            "Lyman-alpha emission is one of the main tools for finding galaxies in the first "
            "billion years.",
            "The visibility of {obj} depends on the neutral fraction of the intergalactic medium.",
            "Most {obj} are tiny and faint, so only space-based imaging resolves their structure.",
            "Extended haloes around {obj} trace gas flowing into and out of young galaxies.",
            "Overdensities of {obj} may mark the progenitors of today's massive clusters.",
        ),
    ),
    "comet": KindWords(
        objects=(
            "comets", "cometary nucleus", "coma", "dust tail", "ion tail", "cometary jets",
            "fragmenting comets", "Jupiter-family comets", "long-period comets",
            "main-belt comets", "active asteroids", "interstellar objects",
            "a frozen body shedding gas and dust as it nears the inner planets",
            "volatile-rich primitive bodies", "outgassing", "split nuclei",
        ),
        uses=(
            "nucleus size measurement", "coma morphology", "dust production rates",
            "rotation period determination", "fragmentation dynamics",
            "composition of primitive material",
            "outgassing activity monitoring", "dust grain properties",
            "orbital evolution of small bodies",
            "origin of the early planetary system",
        ),
        topics=(
            "The Nucleus and Coma of an Active Comet", "Monitoring a Fragmenting Comet",
            "Dust Jets and Rotation of Cometary Nuclei", "Activity of Main-Belt Comets",
            "An Interstellar Interloper", "Comets Approaching Perihelion",
            "Primitive Bodies from the Oort Cloud",
        ),
        openings=(
            "Comets preserve some of the most primitive material left over from the formation of "
            "the planets.",
            "As a comet approaches perihelion, sublimating volatiles lift dust into a bright coma "
            "and a curved tail.",
            "High-resolution imaging isolates the nucleus from the surrounding coma.",
            "The breakup of a comet exposes fresh material from the interior.",
            "Dust and gas released from the surface trace the activity of the nucleus.",
        ),
    ),
    "elliptical_galaxy": KindWords(
        objects=(
            "elliptical galaxies", "early-type galaxies", "giant ellipticals",
            "lenticular galaxies",
            "globular cluster systems", "supermassive black holes", "nuclear dust discs",
            "shell galaxies", "optical jets from active nuclei", "core galaxies",
            "massive quiescent galaxies", "a smooth round galaxy of old red stars",
            "a galaxy that stopped forming stars long ago", "surface brightness fluctuations",
            "boxy and discy isophotes",
        ),
        uses=(
            "black hole mass measurements", "surface brightness fluctuation distances",
            "globular cluster luminosity functions", "stellar population ages", "merger histories",
            "central surface brightness profiles", "AGN feedback",
            "dust origin in early-type galaxies",
            "fundamental plane scaling relations", "quenching of star formation",
        ),
        topics=(
            "Black Holes at the Centres of Giant Ellipticals",
            "Globular Cluster Systems of Early-Type Galaxies",
            "Dust Discs in Elliptical Galaxies", "Shells and the Merger History of Ellipticals",
            "Core Profiles of Massive Galaxies", "Optical Jets from Active Nuclei",
            "Distances from Surface Brightness Fluctuations",
        ),
        openings=(
            "Elliptical galaxies contain most of the stellar mass in the local volume, mostly in "
            "old stars.",
            "The centres of {obj} host supermassive black holes whose masses correlate with their "
            "hosts.",
            "Rich globular cluster systems around giant ellipticals record their assembly history.",
            "Faint shells and dust in {obj} are remnants of past mergers.",
            "High-resolution imaging of the cores of {obj} reveals the imprint of black hole "
            "binaries.",
        ),
    ),
    "edge_on_galaxy": KindWords(
        objects=(
            "edge-on galaxies", "edge-on disc galaxies", "dust lanes", "thick discs", "thin discs",
            "boxy and peanut-like bulges", "warped discs",
            "extraplanar dust", "galactic haloes", "vertical structure of discs",
            "a flat galaxy seen exactly from the side", "a thin streak of light cut by a dark band",
            "Sombrero-like galaxies", "superthin galaxies", "disc-halo interface",
        ),
        uses=(
            "vertical structure of discs", "dust distribution in discs", "thick disc formation",
            "disc warps", "extraplanar gas and dust", "bulge morphology",
            "stellar scale heights", "radiative transfer modelling", "halo stellar populations",
            "galactic fountain flows",
        ),
        topics=(
            "The Vertical Structure of Edge-On Discs", "Dust Lanes in Edge-On Galaxies",
            "Thick Discs and Their Origin", "Warps and Flares in Disc Galaxies",
            "Extraplanar Dust and the Disc-Halo Interface", "Peanut Bulges Seen Edge-On",
        ),
        openings=(
            "Viewed edge-on, disc galaxies reveal their vertical structure and their dust "
            "directly.",
            "The dust lanes of {obj} can be traced far above the midplane.",
            "The thick and thin components of {obj} formed at different epochs.",
            "Edge-on geometry separates the bulge, the disc and the halo of {obj}.",
            "Many {obj} show warps whose origin remains debated.",
        ),
    ),
    "planetary_nebula": KindWords(
        objects=(
            "planetary nebulae", "bipolar nebulae", "central stars of planetary nebulae",
            "ionized shells", "cometary knots", "FLIERs and ansae", "multiple shells",
            "concentric arcs", "post-AGB stars", "white dwarf progenitors",
            "proto-planetary nebulae",
            "a glowing shell of gas cast off by an evolved star", "hourglass nebulae",
            "point-symmetric jets", "ionization fronts",
            "the outer layers of a star like ours puffed into space",
        ),
        uses=(
            "mass-loss history of evolved stars", "shaping by binary companions",
            "photoionization modelling", "expansion parallaxes",
            "chemical abundances of ejected gas",
            "the final stages of low- and intermediate-mass stars", "knot formation and survival",
            "jet-driven shaping", "central star evolution", "enrichment of the interstellar medium",
        ),
        topics=(
            "Shaping of Planetary Nebulae by Binaries", "Knots and Filaments in Planetary Nebulae",
            "Expansion Parallaxes of Planetary Nebulae", "Bipolar Outflows from Evolved Stars",
            "Concentric Arcs and Episodic Mass Loss", "The Central Stars of Planetary Nebulae",
            "Young Planetary Nebulae",
        ),
        openings=(
            "Planetary nebulae form when a star like ours sheds its outer layers at the end of "
            "its evolution.",
            "The shapes of {obj} range from round shells to highly collimated bipolar outflows.",
            "Fast winds and ultraviolet light from the central star sculpt the {obj}.",
            "Many {obj} show features that are hard to explain without a binary companion.",
            "Emission-line imaging of {obj} maps the ionization structure of the ejected gas.",
        ),
    ),
    "giant_planet": KindWords(
        objects=(
            "Jupiter", "gas giant planets", "giant planet atmospheres", "zonal bands",
            "the Great Red Spot", "atmospheric vortices", "storms in giant planet atmospheres",
            "aurorae", "planetary ring systems", "ring particles", "Uranus and Neptune",
            "ice giants", "Galilean satellites", "moon shadow transits",
            "a huge gas planet with stripes",
            "the largest planets of our planetary system", "polar hoods and aerosols",
            "ring divisions and gaps",
        ),
        uses=(
            "atmospheric dynamics", "cloud-top wind measurements", "long-term monitoring of storms",
            "auroral emission and magnetospheric physics", "ring structure and dynamics",
            "seasonal change in giant planet atmospheres", "vortex evolution",
            "methane band imaging of cloud heights", "satellite surface studies",
            "support for spacecraft missions",
        ),
        topics=(
            "Outer Planet Atmospheres Legacy", "Storms and Vortices on the Gas Giants",
            "Aurorae of the Giant Planets", "Seasonal Change on the Ice Giants",
            "Ring Structure at High Resolution", "Cloud Tracking and Zonal Winds",
            "The Evolution of the Great Red Spot",
        ),
        openings=(
            "The giant planets have dynamic atmospheres with banded clouds, jets and long-lived "
            "storms.",
            "Regular imaging of {obj} tracks how the clouds change from year to year.",
            "Ultraviolet imaging reveals aurorae powered by the planet's magnetosphere.",
            "Broad ring systems around the giant planets are sculpted by embedded moonlets and "
            "resonances.",
            "Spacecraft provide close looks, while long-term monitoring from orbit follows {obj} "
            "over many seasons.",
        ),
    ),
    "star_forming_region": KindWords(
        objects=(
            "star-forming regions", "HII regions", "pillars of gas and dust", "elephant trunks",
            "young massive clusters", "OB associations", "ionization fronts", "bright rims",
            "evaporating globules of dense gas", "protostars", "Herbig-Haro jets",
            "giant molecular clouds",
            "embedded young stars", "a glowing cloud where new stars are being born",
            "dusty columns lit by hot young stars", "photoevaporation", "massive star feedback",
        ),
        uses=(
            "triggered star formation", "photoevaporation of molecular clouds",
            "initial mass function",
            "feedback from massive stars", "cluster formation", "proper motions of outflows",
            "pre-main-sequence populations", "gas dispersal timescales", "ionizing radiation field",
            "star formation efficiency",
        ),
        topics=(
            "Pillars and Feedback in Massive Star-Forming Regions",
            "Young Clusters and Their Birth Clouds",
            "Triggered Star Formation at Ionization Fronts", "Outflows from Embedded Protostars",
            "The Initial Mass Function in Young Clusters", "A Panchromatic Survey of HII Regions",
            "Photoevaporating Globules",
        ),
        openings=(
            "Massive stars shape their birth clouds through ionizing radiation and winds.",
            "The pillars of giant HII regions are sculpted by the ultraviolet light of nearby "
            "young stars.",
            "New generations of stars may be triggered where ionization fronts compress the gas.",
            "Deep imaging resolves {obj} and the protostellar jets emerging from them.",
            "Young clusters in {obj} still sit within the remains of their natal cloud.",
        ),
    ),
    "protoplanetary_disk": KindWords(
        objects=(
            "protoplanetary disks", "edge-on disks", "circumstellar disks", "debris disks",
            "proplyds", "disk silhouettes", "bipolar reflection nebulae", "T Tauri stars",
            "young stellar objects", "jets from young stars", "scattered light from dust",
            "a young star surrounded by the flattened disk that will form planets",
            "dark lanes of dusty disks", "disk gaps and rings", "coronagraphic imaging",
            "planet-forming material",
        ),
        uses=(
            "disk structure and flaring", "dust settling and grain growth", "planet formation",
            "photoevaporation of disks", "disk evolution", "detection of disk substructure",
            "jet launching", "high-contrast imaging", "dust scattering properties",
            "disk masses and lifetimes",
        ),
        topics=(
            "Edge-On Disks in Nearby Star-Forming Regions", "Silhouette Disks in the Orion Nebula",
            "Debris Disks at High Contrast", "Grain Growth in Protoplanetary Disks",
            "Jets and Disks of Young Stars", "Planet Formation Signatures in Scattered Light",
        ),
        openings=(
            "Planets form in the disks of gas and dust that surround young stars.",
            "Seen edge-on, such disks appear as dark lanes flanked by scattered light.",
            "In bright HII regions, disks around young stars are seen in silhouette and are "
            "eroded by ultraviolet light.",
            "Coronagraphic imaging suppresses the glare of the star to reveal {obj}.",
            "The structure of {obj} records the early stages of planet formation.",
        ),
    ),
    "merging_galaxies": KindWords(
        objects=(
            "interacting galaxies", "galaxy mergers", "tidal tails", "tidal bridges",
            "luminous infrared galaxies", "starburst galaxies", "super star clusters",
            "collisional ring galaxies", "tidal dwarf galaxies", "double nuclei",
            "two galaxies colliding and pulling streams of stars out of each other",
            "late-stage mergers", "dual active nuclei", "disturbed morphologies",
            "galaxies tearing each other apart",
        ),
        uses=(
            "merger-triggered star formation", "young cluster populations", "merger simulations",
            "dual AGN searches", "tidal feature morphology", "galaxy assembly through mergers",
            "cluster disruption", "gas inflow to the nuclei",
            "formation of elliptical galaxies from mergers",
            "interaction sequence",
        ),
        topics=(
            "Star Clusters in Merging Galaxies",
            "The Merger Sequence of Luminous Infrared Galaxies",
            "Tidal Tails and Tidal Dwarfs", "Collisional Ring Galaxies",
            "Dual Nuclei in Late-Stage Mergers",
            "Starbursts in Interacting Pairs",
        ),
        openings=(
            "Galaxy mergers transform discs into spheroids and trigger bursts of star formation.",
            "The tidal tails of interacting pairs trace their orbits and the distribution of "
            "their dark matter.",
            "Collisions compress gas and form super star clusters in large numbers.",
            "In late-stage mergers, {obj} may host pairs of accreting black holes.",
            "Long tidal tails are flung out by gravitational tides during close passages.",
        ),
    ),
    "deep_field": KindWords(
        objects=(
            "deep fields", "faint galaxies", "galaxy populations across redshift",
            "galaxy morphologies",
            "distant galaxies", "high-redshift galaxies", "field galaxies",
            "photometric redshift samples",
            "thousands of galaxies in a small patch of space", "extragalactic background",
            "galaxies seen billions of years ago", "quiescent and star-forming galaxies",
            "faint red galaxies",
            "galaxy number counts",
        ),
        uses=(
            "galaxy evolution", "galaxy size evolution", "morphological evolution", "number counts",
            "photometric redshifts", "the star formation history of the cosmos",
            "stellar mass functions", "deep multi-wavelength surveys",
            "legacy extragalactic datasets",
            "structural parameters of distant galaxies",
        ),
        topics=(
            "An Ultra-Deep Field", "A Deep Multi-Band Extragalactic Survey",
            "Parallel Deep Imaging",
            "Galaxy Evolution over Ten Billion Years", "The Faintest Galaxies in Deep Imaging",
            "A Legacy Field for Galaxy Evolution",
        ),
        openings=(
            "Deep imaging of extragalactic fields reveals thousands of galaxies over most of the "
            "age of the cosmos.",
            "The sizes and shapes of faint galaxies change strongly with redshift.",
            "Only very long exposures reach the faint galaxies that dominate the number counts.",
            "Deep fields provide a census of galaxies from the present day back to the first "
            "galaxies.",
            "Combining many filters yields photometric redshifts for thousands of faint galaxies.",
        ),
    ),
    "calibration_frame": KindWords(
        objects=(
            "dark frames", "bias frames", "internal flat fields", "flat-field dust motes",
            "hot pixels", "detector blemishes", "charge transfer efficiency", "amplifier glow",
            "detector calibration", "charged-particle hit rates",
            "detector readout noise", "bad pixel masks",
            "an exposure taken with the shutter closed", "instrument health monitoring",
            "photometric zero points",
        ),
        uses=(
            "dark current monitoring", "flat-field correction", "bias subtraction",
            "hot pixel tracking", "charge transfer efficiency correction", "detector stability",
            "calibration reference files", "pipeline calibration",
            "detector degradation monitoring",
            "photometric accuracy",
        ),
        topics=(
            "Dark Monitor", "Internal Flat Field Stability", "Bias and Read Noise Monitor",
            "Hot Pixel Annealing", "Charge Transfer Efficiency Monitor", "Detector Health Monitor",
            "Flat Field Dust Mote Tracking",
        ),
        openings=(
            "This calibration programme monitors the detector as part of routine maintenance.",
            "Regular {obj} are required to build calibration reference files for the pipeline.",
            "Radiation damage in orbit steadily increases the number of hot pixels.",
            "Internal exposures with no external light characterise the dark current and the read "
            "noise.",
            "The stability of {obj} must be tracked to keep photometric accuracy within "
            "requirements.",
        ),
    ),
}
