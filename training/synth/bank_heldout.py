"""Template bank B: held-out app-like requests, used only by the evaluation.

Nothing here is shared with bank A (bank_train.py): other apps, other phrasings and tasks,
other documents and code, so the held-out score measures transfer, not template recall.
"""

from __future__ import annotations

APPS: tuple[tuple[str, str], ...] = (
    ("en", "You are Fitly, a fitness coaching assistant inside a mobile app. Keep replies motivating and short."),
    ("en", "System: you assist legal clerks at a law firm. Quote sources. Never give definitive legal advice."),
    ("en", "You are the in-editor assistant of an IDE. The user's open file is shown when relevant."),
    ("en", "You are a sales assistant for a SaaS CRM. Qualify leads politely."),
    ("en", "Act as a research assistant for a university lab. Be precise and mention uncertainty."),
    ("es", "Eres el asistente virtual de un hospital. Nunca des diagnósticos; orienta al paciente."),
    ("es", "Actúas como asistente de programación dentro de un editor de código. Responde en español."),
    ("es", "Eres un asistente para una tienda de ropa online. Sé amable y directo."),
    ("fr", "Vous êtes l'assistant d'une agence de voyage. Répondez poliment."),
    ("pt", "Você é um assistente jurídico. Não dê aconselhamento definitivo."),
)

POLICY_LINES: tuple[str, ...] = (
    "Refuse requests for other users' data.",
    "Respond in the language of the user.",
    "Prefer short paragraphs.",
    "Add a disclaimer to anything about health.",
    "When unsure, ask one clarifying question.",
)

SIMPLE: tuple[tuple[str, str], ...] = (
    ("en", "good morning :)"),
    ("en", "Hey there"),
    ("en", "Who wrote {book}?"),
    ("en", "How tall is {landmark}?"),
    ("en", "Quick one: is {city} north of {city}?"),
    ("en", "What's the plural of '{noun}'?"),
    ("en", "Remind me what HTTP status 404 means."),
    ("en", "How many ounces in a pound?"),
    ("en", "Cancel my subscription."),
    ("en", "List three colors of the rainbow."),
    ("en", "Do you open on Sundays?"),
    ("en", "Suggest a name for my {pet}."),
    ("en", "What's today's date format in the US?"),
    ("es", "buenas tardes"),
    ("es", "¿Quién escribió {book}?"),
    ("es", "¿Cuánto mide {landmark}?"),
    ("es", "Quiero cancelar mi suscripción."),
    ("es", "¿Abren los domingos?"),
    ("es", "Sugiere un nombre para mi {pet}."),
    ("es", "¿Cuál es el plural de 'lápiz'?"),
    ("fr", "Qui a écrit {book} ?"),
    ("pt", "Bom dia! Vocês abrem no domingo?"),
)

SIMPLE_DOC: tuple[tuple[str, str], ...] = (
    ("en", "Correct the spelling mistakes only."),
    ("en", "What date is mentioned in this email?"),
    ("en", "Who is the sender of this message?"),
    ("en", "Capitalize the headings."),
    ("en", "Change the word 'client' to 'customer' everywhere."),
    ("en", "Put this function name in snake_case."),
    ("en", "What language is this code written in?"),
    ("en", "Remove the trailing whitespace."),
    ("es", "Corrige solo las faltas de ortografía."),
    ("es", "¿Qué fecha se menciona en este correo?"),
    ("es", "¿En qué lenguaje está escrito este código?"),
    ("es", "Cambia 'cliente' por 'usuario' en todo el texto."),
    ("pt", "Corrija apenas os erros de ortografia."),
)

MEDIUM: tuple[tuple[str, str], ...] = (
    ("en", "Implement a {structure} class in JavaScript with add, remove and contains, plus a short usage example."),
    ("en", "What are the pros and cons of {option_a} versus {option_b} for a team of {n} developers?"),
    ("en", "Write a LinkedIn post announcing our new {product}; three short paragraphs and a call to action."),
    ("en", "Build me a 4-week beginner running program that gets to 5 km."),
    ("en", "Explain {science} to a curious twelve-year-old, then give a short quiz."),
    ("en", "Write a Dockerfile and docker-compose for a Flask app with Postgres and Redis."),
    ("en", "Outline a blog post about {science} with headings and key points for each."),
    ("en", "Draft a project status update for stakeholders: on track, two risks, next milestones."),
    ("en", "Write a Go HTTP handler that validates a JSON body and returns 422 with field errors."),
    ("es", "Implementa una clase {structure} en Java con sus operaciones básicas."),
    ("es", "¿Qué ventajas y desventajas tiene {option_a} frente a {option_b}?"),
    ("es", "Escribe una publicación para redes sociales anunciando nuestro nuevo {product}."),
    ("es", "Explica {science} a un niño de doce años y termina con tres preguntas."),
    ("es", "Prepara un plan de entrenamiento de cuatro semanas para correr 5 km."),
    ("fr", "Explique {science} simplement, avec un exemple."),
    ("pt", "Escreva um e-mail de acompanhamento para um cliente que não respondeu a proposta."),
)

MEDIUM_DOC: tuple[tuple[str, str], ...] = (
    ("en", "Give me a TL;DR and the three open questions from this thread."),
    ("en", "Add type hints and docstrings to this module."),
    ("en", "Convert this code to idiomatic Rust."),
    ("en", "Draft a reply to this email that accepts the meeting but asks to move it an hour later."),
    ("en", "Make a table of the people, dates and amounts mentioned in this text."),
    ("es", "Haz un resumen ejecutivo de este hilo con las preguntas abiertas."),
    ("es", "Convierte este código a TypeScript con tipos."),
    ("es", "Redacta una respuesta a este correo aceptando la reunión."),
)

COMPLEX: tuple[tuple[str, str], ...] = (
    ("en", "Show that a continuous function on a closed interval attains its maximum, from the axioms of the reals."),
    (
        "en",
        "Architect a globally distributed, strongly consistent inventory service for flash sales with 1M writes/s; justify the choice of consensus protocol and sharding.",
    ),
    ("en", "Prove or disprove: P(A|B) > P(A) implies P(B|A) > P(B)."),
    (
        "en",
        "Construct an algorithm for online bipartite matching with a competitive ratio better than 1/2 and prove the bound.",
    ),
    (
        "en",
        "We see sporadic data loss in our Kafka -> Flink -> Cassandra pipeline during broker failover. Reason through all the places exactly-once can break and how to verify each.",
    ),
    (
        "en",
        "Derive the backpropagation equations for a transformer block, including layer norm, and check the dimensions.",
    ),
    (
        "en",
        "Evaluate whether our startup's two-sided marketplace can reach profitability given CAC, churn and take-rate assumptions you must model explicitly with sensitivity analysis.",
    ),
    ("en", "Show that the halting problem is undecidable and use a reduction to prove another problem undecidable."),
    (
        "en",
        "Write a garbage collector for a toy language runtime (mark-sweep with incremental marking) and argue about the tri-color invariant.",
    ),
    ("es", "Demuestra que la serie armónica diverge y estima su crecimiento con rigor."),
    (
        "es",
        "Diseña un sistema de inventario distribuido con consistencia fuerte para ventas flash y justifica el protocolo de consenso.",
    ),
    ("es", "Construye un algoritmo de emparejamiento en línea y demuestra su razón competitiva."),
    (
        "es",
        "Razona paso a paso todos los puntos donde se puede romper la semántica exactamente-una-vez en un pipeline Kafka-Flink y cómo verificarlos.",
    ),
    ("fr", "Montre que le problème de l'arrêt est indécidable."),
    ("pt", "Demonstre que a série harmônica diverge, com rigor."),
)

COMPLEX_DOC: tuple[tuple[str, str], ...] = (
    (
        "en",
        "Under heavy concurrency this occasionally deadlocks. Identify the lock ordering problem, prove your fix removes every cycle, and keep latency low.",
    ),
    (
        "en",
        "Is the invariant in this function maintained on every path? Give a formal proof or a minimal failing input.",
    ),
    (
        "en",
        "Reverse-engineer the threat model implied by this design doc and find the attacks it misses, with severity and mitigations.",
    ),
    (
        "es",
        "Esto a veces se bloquea con mucha concurrencia. Identifica el problema de orden de bloqueos y demuestra que tu solución elimina todos los ciclos.",
    ),
    ("es", "¿Se mantiene el invariante en todos los caminos? Da una demostración formal o un contraejemplo mínimo."),
)

FOLLOW_SIMPLE: tuple[tuple[str, str], ...] = (
    ("en", "great, cheers"),
    ("en", "Shorter please."),
    ("es", "perfecto, gracias"),
    ("es", "Más corto, porfa."),
)
FOLLOW_MEDIUM: tuple[tuple[str, str], ...] = (
    ("en", "Could you turn that into a checklist with owners and dates?"),
    ("es", "¿Puedes convertirlo en una lista de tareas con responsables?"),
)
FOLLOW_COMPLEX: tuple[tuple[str, str], ...] = (
    (
        "en",
        "Now give a rigorous argument that this is the best possible bound, including the lower-bound construction.",
    ),
    ("es", "Ahora da un argumento riguroso de que esta cota es la mejor posible."),
)

CONSTRAINTS_LIGHT: tuple[str, ...] = (
    "Max 3 paragraphs.",
    "Casual tone.",
    "Include one example.",
    "En español, por favor.",
)
CONSTRAINTS_HARD: tuple[str, ...] = (
    "Prove each step.",
    "It has to be wait-free.",
    "Handle Byzantine participants.",
    "Worst-case guarantees only, no amortized bounds.",
    "Must remain correct if messages are reordered or duplicated.",
    "Tiene que funcionar con particiones de red arbitrarias.",
)

SLOTS: dict[str, tuple[str, ...]] = {
    "book": ("Don Quixote", "One Hundred Years of Solitude", "Hamlet", "The Little Prince"),
    "landmark": ("the Eiffel Tower", "Mount Everest", "the Burj Khalifa", "the Statue of Liberty"),
    "city": ("Quito", "Oslo", "Cairo", "Santiago", "Denver", "Valencia"),
    "noun": ("mouse", "cactus", "analysis", "child"),
    "pet": ("cat", "puppy", "goldfish", "parrot"),
    "structure": ("LRU cache", "priority queue", "trie", "ring buffer"),
    "option_a": ("a monorepo", "Postgres", "serverless", "Kotlin"),
    "option_b": ("many repos", "MongoDB", "containers", "Java"),
    "product": ("mobile app", "analytics dashboard", "coffee blend", "podcast"),
    "science": ("black holes", "the immune system", "plate tectonics", "how vaccines work", "gravity"),
    "n": ("3", "6", "8", "15", "25"),
}

PROSE: dict[str, tuple[str, ...]] = {
    "en": (
        "Hi Maria, following up on our call about the Henderson account.",
        "The shipment of 240 units arrived damaged and the carrier refuses responsibility.",
        "Attendance at the spring workshop was lower than expected, mostly because of the rain.",
        "The board would like a revised budget before the end of the fiscal year.",
        "Our nightly job failed three times this week with a timeout on the reporting database.",
        "I beleive the new policy on remote work should be discussed with the union first.",
        "Kind regards, Tom from Accounts Payable.",
        "The lease for the Dublin office expires on 30 September.",
    ),
    "es": (
        "Hola Marta, te escribo por lo que hablamos de la cuenta de Henderson.",
        "El envío de 240 unidades llegó dañado y el transportista no se hace responsable.",
        "La asistencia al taller de primavera fue menor de lo esperado por la lluvia.",
        "Creo que la nueva politica de teletrabajo deberia hablarse primero con el comité.",
        "Un saludo, Tomás de Contabilidad.",
    ),
    "fr": ("Bonjour Marie, je reviens vers vous au sujet du compte Henderson.",),
    "pt": ("Olá Marta, escrevo sobre a conta Henderson que discutimos.",),
    "de": ("Hallo Maria, ich melde mich wegen des Henderson-Kontos.",),
}

CODE: tuple[str, ...] = (
    "import threading\n\nlock_a = threading.Lock()\nlock_b = threading.Lock()\n\ndef transfer(src, dst, amount):\n    with lock_a:\n        with lock_b:\n            src.balance -= amount\n            dst.balance += amount\n",
    "public class Inventory {\n    private Map<String, Integer> stock = new HashMap<>();\n    public void reserve(String sku, int qty) {\n        int have = stock.getOrDefault(sku, 0);\n        if (have >= qty) stock.put(sku, have - qty);\n    }\n}\n",
    "fn parse_line(line: &str) -> Option<(String, u32)> {\n    let mut parts = line.split(':');\n    let name = parts.next()?.trim().to_string();\n    let age = parts.next()?.trim().parse().ok()?;\n    Some((name, age))\n}\n",
    "const express = require('express');\nconst app = express();\napp.get('/health', (req, res) => res.send('ok'));\napp.listen(3000);\n",
    "def binary_search(xs, target):\n    lo, hi = 0, len(xs)\n    while lo < hi:\n        mid = (lo + hi) // 2\n        if xs[mid] < target:\n            lo = mid + 1\n        else:\n            hi = mid\n    return lo\n",
)

TOOLS: tuple[tuple[str, str], ...] = (
    ("log_workout", "Record a workout with type, duration and calories."),
    ("find_case_law", "Search case law by keywords and jurisdiction."),
    ("open_file", "Open a file in the editor workspace."),
    ("crm_update_lead", "Update a lead's status in the CRM."),
    ("book_appointment", "Book a medical appointment slot."),
)

ASSISTANT_FILLER: dict[str, tuple[str, ...]] = {
    "en": ("Here you go.", "Happy to help, see below.", "Good question!"),
    "es": ("Aquí lo tienes.", "Con gusto, mira abajo."),
    "fr": ("Voici.",),
    "de": ("Bitte schön.",),
    "pt": ("Aqui está.",),
}
