//! The page that asks a person to confirm an identity link (docs/profiles.md,
//! "Linking"): opening a link changes nothing by itself; this page, in the site's
//! language, says what continuing does, and its form posts back to the same URL on this
//! site. It loads nothing (no script, no image, no font, no third party) and is meant to
//! be served with a policy that lets it load nothing and be framed by nobody. Its button
//! shows only after [`BUTTON_DELAY`]: a page that opens it under the visitor's pointer
//! between the two clicks of a double click (DoubleClickjacking, which no framing rule
//! stops) finds nothing to click.
//!
//! Pure: the Worker serves what [`page`] returns.

/// The words of the page in one language.
struct Words {
    lang: &'static str,
    title: &'static str,
    body: &'static str,
    go: &'static str,
    leave: &'static str,
}

const WORDS: [Words; 7] = [
    Words {
        lang: "en",
        title: "Use this link on this device?",
        body: "This link was sent to one person, so that this site can show them what they \
               looked at on their other devices. Continue only if it was sent to you.",
        go: "Continue",
        leave: "No, just show the page",
    },
    Words {
        lang: "fr",
        title: "Utiliser ce lien sur cet appareil ?",
        body: "Ce lien a été envoyé à une personne, pour que ce site lui montre ce qu'elle a \
               consulté sur ses autres appareils. Continuez seulement s'il vous a été envoyé.",
        go: "Continuer",
        leave: "Non, afficher simplement la page",
    },
    Words {
        lang: "de",
        title: "Diesen Link auf diesem Gerät verwenden?",
        body: "Dieser Link wurde an eine Person gesendet, damit diese Website ihr zeigen kann, \
               was sie sich auf ihren anderen Geräten angesehen hat. Fahren Sie nur fort, wenn \
               er an Sie gesendet wurde.",
        go: "Fortfahren",
        leave: "Nein, nur die Seite anzeigen",
    },
    Words {
        lang: "es",
        title: "¿Usar este enlace en este dispositivo?",
        body: "Este enlace se envió a una persona, para que este sitio le muestre lo que \
               consultó en sus otros dispositivos. Continúe solo si se lo enviaron a usted.",
        go: "Continuar",
        leave: "No, solo mostrar la página",
    },
    Words {
        lang: "it",
        title: "Usare questo link su questo dispositivo?",
        body: "Questo link è stato inviato a una persona, perché questo sito le mostri ciò che \
               ha consultato sui suoi altri dispositivi. Continua solo se è stato inviato a te.",
        go: "Continua",
        leave: "No, mostra solo la pagina",
    },
    Words {
        lang: "nl",
        title: "Deze link op dit apparaat gebruiken?",
        body: "Deze link is naar één persoon gestuurd, zodat deze site kan tonen wat die op \
               andere apparaten bekeek. Ga alleen verder als hij naar jou is gestuurd.",
        go: "Doorgaan",
        leave: "Nee, toon alleen de pagina",
    },
    Words {
        lang: "pt",
        title: "Usar este link neste dispositivo?",
        body: "Este link foi enviado a uma pessoa, para que este site lhe mostre o que \
               consultou nos seus outros dispositivos. Continue apenas se foi enviado para si.",
        go: "Continuar",
        leave: "Não, mostrar apenas a página",
    },
];

/// How long the button stays hidden after the page is shown, as CSS says it.
pub const BUTTON_DELAY: &str = "0.8s";

/// The `Content-Security-Policy` the page is served with: it loads nothing, posts only
/// to this site, and no other page may frame it (a framed page could be clicked through
/// by someone else's page).
pub const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                          frame-ancestors 'none'; base-uri 'none'";

fn words(accept_language: Option<&str>) -> &'static Words {
    let wanted = accept_language.unwrap_or("").split(',').map(|part| {
        let tag = part.split(';').next().unwrap_or("").trim();
        tag.split('-').next().unwrap_or("").to_ascii_lowercase()
    });
    let mut chosen = None;
    for tag in wanted {
        if let Some(w) = WORDS.iter().find(|w| w.lang == tag) {
            chosen = Some(w);
            break;
        }
    }
    match chosen {
        Some(w) => w,
        None => &WORDS[0],
    }
}

/// Text for an HTML attribute value or element text.
fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The page: `confirm` is the URL its form posts to (this page's own, on this site),
/// `leave` the page without the link.
pub fn page(accept_language: Option<&str>, confirm: &str, leave: &str) -> String {
    let w = words(accept_language);
    let mut out = String::with_capacity(1600);
    out.push_str("<!doctype html><html lang=\"");
    out.push_str(w.lang);
    out.push_str(
        "\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, \
         initial-scale=1\"><meta name=\"robots\" content=\"noindex\"><title>",
    );
    escape(w.title, &mut out);
    out.push_str(
        "</title><style>body{font:16px/1.5 system-ui,sans-serif;margin:0;display:flex;\
         min-height:100vh;align-items:center;justify-content:center;background:#f6f6f4;\
         color:#1d1d1b}main{max-width:32rem;padding:2rem;background:#fff;border-radius:.75rem;\
         box-shadow:0 1px 3px #0002}h1{font-size:1.4rem;margin:0 0 1rem}button{font:inherit;\
         padding:.6rem 1.4rem;border:0;border-radius:.4rem;background:#1d1d1b;color:#fff;\
         cursor:pointer;visibility:hidden;animation:mm-ready 0s ",
    );
    out.push_str(BUTTON_DELAY);
    out.push_str(
        " forwards}@keyframes mm-ready{to{visibility:visible}}a{color:inherit}</style></head>\
         <body><main><h1>",
    );
    escape(w.title, &mut out);
    out.push_str("</h1><p>");
    escape(w.body, &mut out);
    out.push_str("</p><form method=\"post\" action=\"");
    escape(confirm, &mut out);
    out.push_str("\"><button type=\"submit\">");
    escape(w.go, &mut out);
    out.push_str("</button></form><p><a href=\"");
    escape(leave, &mut out);
    out.push_str("\">");
    escape(w.leave, &mut out);
    out.push_str("</a></p></main></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_is_the_first_the_page_has() {
        let lang = |accept| words(accept).lang;
        assert_eq!(lang(Some("fr-FR,fr;q=0.9,en;q=0.8")), "fr");
        assert_eq!(lang(Some("ja,de;q=0.5")), "de");
        assert_eq!(lang(Some("ja")), "en");
        assert_eq!(lang(None), "en");
    }

    #[test]
    fn the_urls_are_escaped_and_nothing_is_loaded() {
        let page = page(
            Some("de"),
            "/a?x=\"><script>alert(1)</script>&mm_link=l1.k.p.t",
            "/a?x=1",
        );
        assert!(page.contains("lang=\"de\""));
        assert!(page.contains("Fortfahren"));
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("action=\"/a?x=&quot;&gt;&lt;script&gt;"));
        for loader in ["src=", "<link", "<script", "@import", "url("] {
            assert!(!page.contains(loader), "{loader}");
        }
    }
}
