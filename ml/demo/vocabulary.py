"""Words and templates for the synthetic demo catalog's titles and descriptions, in six languages.

Each demo category has three phrases per language, written as a native speaker would title a video.
The phrases of a category mean the same thing across languages, which is what lets a multilingual
encoder trained on English and French editor labels transfer to German, Spanish, Italian and
Portuguese videos.
"""

from __future__ import annotations

LANGUAGES = ("en", "fr", "de", "es", "it", "pt")

PHRASES: dict[str, dict[str, tuple[str, str, str]]] = {
    "533": {  # Sports > Soccer
        "en": ("soccer", "football match", "goal highlights"),
        "fr": ("football", "match de foot", "les plus beaux buts"),
        "de": ("Fußball", "Fußballspiel", "alle Tore"),
        "es": ("fútbol", "partido de fútbol", "todos los goles"),
        "it": ("calcio", "partita di calcio", "tutti i gol"),
        "pt": ("futebol", "jogo de futebol", "todos os gols"),
    },
    "547": {  # Sports > Basketball
        "en": ("basketball", "NBA dunks", "three pointer"),
        "fr": ("basket", "match de basket", "dunk incroyable"),
        "de": ("Basketball", "Basketballspiel", "Dunking"),
        "es": ("baloncesto", "partido de baloncesto", "triple"),
        "it": ("pallacanestro", "partita di basket", "schiacciata"),
        "pt": ("basquete", "jogo de basquete", "enterrada"),
    },
    "537": {  # Sports > Swimming
        "en": ("swimming", "pool training", "freestyle swim"),
        "fr": ("natation", "entraînement à la piscine", "nage libre"),
        "de": ("Schwimmen", "Schwimmtraining", "Freistil"),
        "es": ("natación", "entrenamiento en la piscina", "estilo libre"),
        "it": ("nuoto", "allenamento in piscina", "stile libero"),
        "pt": ("natação", "treino na piscina", "nado livre"),
    },
    "216": {  # Food & Drink > Cooking
        "en": ("cooking", "easy recipe", "dinner recipe"),
        "fr": ("cuisine", "recette facile", "recette du dîner"),
        "de": ("Kochen", "einfaches Rezept", "Rezept fürs Abendessen"),
        "es": ("cocina", "receta fácil", "receta para la cena"),
        "it": ("cucina", "ricetta facile", "ricetta per la cena"),
        "pt": ("culinária", "receita fácil", "receita para o jantar"),
    },
    "217": {  # Food & Drink > Desserts and Baking
        "en": ("baking", "chocolate cake", "dessert"),
        "fr": ("pâtisserie", "gâteau au chocolat", "dessert maison"),
        "de": ("Backen", "Schokoladenkuchen", "Nachtisch"),
        "es": ("repostería", "pastel de chocolate", "postre casero"),
        "it": ("pasticceria", "torta al cioccolato", "dolce fatto in casa"),
        "pt": ("confeitaria", "bolo de chocolate", "sobremesa caseira"),
    },
    "425": {  # Pets > Dogs
        "en": ("dog", "puppy", "dog training"),
        "fr": ("chien", "chiot", "dressage de chien"),
        "de": ("Hund", "Welpe", "Hundetraining"),
        "es": ("perro", "cachorro", "adiestramiento de perros"),
        "it": ("cane", "cucciolo", "addestramento del cane"),
        "pt": ("cachorro", "filhote de cachorro", "adestramento de cães"),
    },
    "424": {  # Pets > Cats
        "en": ("cat", "kitten", "funny cats"),
        "fr": ("chat", "chaton", "chats drôles"),
        "de": ("Katze", "Kätzchen", "lustige Katzen"),
        "es": ("gato", "gatito", "gatos graciosos"),
        "it": ("gatto", "gattino", "gatti divertenti"),
        "pt": ("gato", "gatinho", "gatos engraçados"),
    },
    "681": {  # Video Gaming > Console Games
        "en": ("gameplay", "console game", "walkthrough"),
        "fr": ("gameplay", "jeu vidéo sur console", "soluce complète"),
        "de": ("Gameplay", "Konsolenspiel", "Komplettlösung"),
        "es": ("gameplay", "videojuego de consola", "guía completa"),
        "it": ("gameplay", "videogioco per console", "soluzione completa"),
        "pt": ("gameplay", "jogo de console", "detonado completo"),
    },
    "655": {  # Travel > Travel Locations
        "en": ("travel", "beach holiday", "city trip"),
        "fr": ("voyage", "vacances à la plage", "escapade en ville"),
        "de": ("Reise", "Strandurlaub", "Städtereise"),
        "es": ("viaje", "vacaciones en la playa", "escapada urbana"),
        "it": ("viaggio", "vacanze al mare", "gita in città"),
        "pt": ("viagem", "férias na praia", "passeio pela cidade"),
    },
    "283": {  # Home & Garden > Interior Decorating
        "en": ("interior design", "room makeover", "home decor"),
        "fr": ("décoration intérieure", "relooking de chambre", "déco maison"),
        "de": ("Inneneinrichtung", "Zimmer umgestalten", "Wohndeko"),
        "es": ("decoración de interiores", "cambio de habitación", "decoración del hogar"),
        "it": ("arredamento", "rinnovo della camera", "decorazione della casa"),
        "pt": ("decoração de interiores", "transformação do quarto", "decoração da casa"),
    },
    "338": {  # Entertainment > Music
        "en": ("live concert", "music", "guitar song"),
        "fr": ("concert live", "musique", "chanson à la guitare"),
        "de": ("Live-Konzert", "Musik", "Gitarrensong"),
        "es": ("concierto en vivo", "música", "canción con guitarra"),
        "it": ("concerto dal vivo", "musica", "canzone alla chitarra"),
        "pt": ("show ao vivo", "música", "música no violão"),
    },
    "203": {  # Fine Art > Dance
        "en": ("dance", "choreography", "dance tutorial"),
        "fr": ("danse", "chorégraphie", "tuto danse"),
        "de": ("Tanz", "Choreografie", "Tanzkurs"),
        "es": ("baile", "coreografía", "tutorial de baile"),
        "it": ("danza", "coreografia", "tutorial di ballo"),
        "pt": ("dança", "coreografia", "tutorial de dança"),
    },
    "641": {  # Genres > Animation & Anime
        "en": ("cartoon", "animated short", "anime episode"),
        "fr": ("dessin animé", "court métrage d'animation", "épisode d'anime"),
        "de": ("Zeichentrick", "Animationsfilm", "Anime Folge"),
        "es": ("dibujos animados", "cortometraje animado", "episodio de anime"),
        "it": ("cartone animato", "corto d'animazione", "episodio anime"),
        "pt": ("desenho animado", "curta de animação", "episódio de anime"),
    },
    "391": {  # Personal Finance
        "en": ("personal finance", "saving money", "budget tips"),
        "fr": ("finances personnelles", "économiser de l'argent", "conseils pour le budget"),
        "de": ("persönliche Finanzen", "Geld sparen", "Budget Tipps"),
        "es": ("finanzas personales", "ahorrar dinero", "consejos de presupuesto"),
        "it": ("finanza personale", "risparmiare soldi", "consigli sul budget"),
        "pt": ("finanças pessoais", "economizar dinheiro", "dicas de orçamento"),
    },
    "52": {  # Business and Finance
        "en": ("business news", "stock market", "startup company"),
        "fr": ("actualité économique", "la bourse", "entreprise start-up"),
        "de": ("Wirtschaftsnachrichten", "Aktienmarkt", "Startup Unternehmen"),
        "es": ("noticias de negocios", "bolsa de valores", "empresa emergente"),
        "it": ("notizie economiche", "mercato azionario", "azienda startup"),
        "pt": ("notícias de negócios", "mercado de ações", "empresa startup"),
    },
    "324": {  # Entertainment > Movies
        "en": ("movie trailer", "film review", "cinema"),
        "fr": ("bande-annonce", "critique de film", "cinéma"),
        "de": ("Filmtrailer", "Filmkritik", "Kino"),
        "es": ("tráiler de la película", "reseña de película", "cine"),
        "it": ("trailer del film", "recensione del film", "cinema"),
        "pt": ("trailer do filme", "crítica de filme", "cinema"),
    },
    "640": {  # Entertainment > Television
        "en": ("TV series", "episode recap", "TV show"),
        "fr": ("série télé", "résumé de l'épisode", "émission de télé"),
        "de": ("Fernsehserie", "Zusammenfassung der Folge", "TV-Show"),
        "es": ("serie de televisión", "resumen del episodio", "programa de televisión"),
        "it": ("serie tv", "riassunto dell'episodio", "programma televisivo"),
        "pt": ("série de tv", "resumo do episódio", "programa de televisão"),
    },
    "472": {  # Science > Space and Astronomy
        "en": ("space", "astronomy", "night sky stars"),
        "fr": ("espace", "astronomie", "ciel étoilé"),
        "de": ("Weltraum", "Astronomie", "Sternenhimmel"),
        "es": ("espacio", "astronomía", "cielo estrellado"),
        "it": ("spazio", "astronomia", "cielo stellato"),
        "pt": ("espaço", "astronomia", "céu estrelado"),
    },
}

TITLES: dict[str, tuple[str, ...]] = {
    "en": ("{a}", "{a} | {b}", "Best {a} of the week", "My {a} vlog #{n}", "{a} for beginners", "Amazing {a}!!"),
    "fr": (
        "{a}",
        "{a} | {b}",
        "Le meilleur de : {a}",
        "Mon vlog {a} #{n}",
        "{a} pour débutants",
        "Incroyable : {a} !!",
    ),
    "de": ("{a}", "{a} | {b}", "Das Beste: {a}", "Mein {a} Vlog #{n}", "{a} für Anfänger", "Unglaublich: {a}!!"),
    "es": ("{a}", "{a} | {b}", "Lo mejor: {a}", "Mi vlog de {a} #{n}", "{a} para principiantes", "¡¡Increíble: {a}!!"),
    "it": (
        "{a}",
        "{a} | {b}",
        "Il meglio: {a}",
        "Il mio vlog di {a} #{n}",
        "{a} per principianti",
        "Incredibile: {a}!!",
    ),
    "pt": ("{a}", "{a} | {b}", "O melhor: {a}", "Meu vlog de {a} #{n}", "{a} para iniciantes", "Incrível: {a}!!"),
}

DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "en": (
        "In this video: {a} and {b}. Subscribe for more!",
        "Everything about {a}. Links: https://example.com/v/{n}",
        "{a}, {b} and more.",
    ),
    "fr": (
        "Dans cette vidéo : {a} et {b}. Abonnez-vous !",
        "Tout sur {a}. Liens : https://example.com/v/{n}",
        "{a}, {b} et plus encore.",
    ),
    "de": (
        "In diesem Video: {a} und {b}. Abonniert den Kanal!",
        "Alles über {a}. Links: https://example.com/v/{n}",
        "{a}, {b} und mehr.",
    ),
    "es": (
        "En este vídeo: {a} y {b}. ¡Suscríbete!",
        "Todo sobre {a}. Enlaces: https://example.com/v/{n}",
        "{a}, {b} y mucho más.",
    ),
    "it": (
        "In questo video: {a} e {b}. Iscriviti!",
        "Tutto su {a}. Link: https://example.com/v/{n}",
        "{a}, {b} e altro ancora.",
    ),
    "pt": (
        "Neste vídeo: {a} e {b}. Inscreva-se!",
        "Tudo sobre {a}. Links: https://example.com/v/{n}",
        "{a}, {b} e muito mais.",
    ),
}

# One-word or emoji titles that carry no category: the share of the platform a text model cannot label.
UNINFORMATIVE_TITLES = ("vlog", "wow", "#shorts", "😂😂😂", "lol", "new video", "🔥🔥", "part 2", "...")
