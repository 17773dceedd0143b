//! Digest documents as files: PDF (pdf-writer, the built-in Helvetica font, so characters
//! outside ASCII print as `?`) and DOCX (docx-rs, full Unicode). Both hold the same lines as
//! the markdown digest, without its markup.

use std::io::Cursor;

use pdf_writer::{Content, Name, Pdf, Rect, Ref, Str};

use super::digest::{self, Digest, plain_lines};
use crate::model::schedule::DigestFormat;

/// Lines on one PDF page.
const LINES_PER_PAGE: usize = 50;
/// Characters kept per PDF line.
const PDF_LINE_CHARS: usize = 95;

/// The digest as a PDF file.
pub fn pdf(d: &Digest) -> Vec<u8> {
    let lines = plain_lines(d);
    let pages: Vec<&[String]> = lines.chunks(LINES_PER_PAGE).collect();
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let font = Ref::new(3);
    let font_name = Name(b"F1");
    let page_ids: Vec<Ref> = (0..pages.len().max(1))
        .map(|i| Ref::new(4 + 2 * i as i32))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(page_ids.len() as i32);
    pdf.type1_font(font).base_font(Name(b"Helvetica"));
    for (i, id) in page_ids.iter().enumerate() {
        let content_id = Ref::new(id.get() + 1);
        let mut page = pdf.page(*id);
        page.media_box(Rect::new(0.0, 0.0, 595.0, 842.0));
        page.parent(tree);
        page.contents(content_id);
        page.resources().fonts().pair(font_name, font);
        drop(page);
        let mut content = Content::new();
        content.begin_text();
        content.set_font(font_name, 10.0);
        content.set_leading(14.0);
        content.next_line(50.0, 800.0);
        for line in pages.get(i).copied().unwrap_or_default() {
            let ascii: String = line
                .chars()
                .take(PDF_LINE_CHARS)
                .map(|c| {
                    if c.is_ascii() && !c.is_ascii_control() {
                        c
                    } else {
                        '?'
                    }
                })
                .collect();
            content.show(Str(ascii.as_bytes()));
            content.next_line_using_leading();
        }
        content.end_text();
        pdf.stream(content_id, &content.finish());
    }
    pdf.finish()
}

/// Why a digest document could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// docx-rs could not write the file.
    #[error("cannot write the DOCX document")]
    Docx(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The digest in `format` as a digest event's `content`: an object for `json`, a string for
/// `markdown` and `html`, the standard base64 of the file for `pdf` and `docx`.
pub fn content(format: DigestFormat, d: &Digest) -> Result<serde_json::Value, DocumentError> {
    use base64::Engine;
    use serde_json::Value;
    let b64 =
        |bytes: Vec<u8>| Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    Ok(match format {
        DigestFormat::Json => digest::json(d),
        DigestFormat::Markdown => Value::String(digest::markdown(d)),
        DigestFormat::Html => Value::String(digest::html(d)),
        DigestFormat::Pdf => b64(pdf(d)),
        DigestFormat::Docx => b64(docx(d)?),
    })
}

/// The digest in `format` as the bytes of an email attachment.
pub fn file(format: DigestFormat, d: &Digest) -> Result<Vec<u8>, DocumentError> {
    Ok(match format {
        DigestFormat::Json => serde_json::to_vec_pretty(&digest::json(d)).unwrap_or_default(),
        DigestFormat::Markdown => digest::markdown(d).into_bytes(),
        DigestFormat::Html => digest::html(d).into_bytes(),
        DigestFormat::Pdf => pdf(d),
        DigestFormat::Docx => docx(d)?,
    })
}

/// The digest as a DOCX file.
pub fn docx(d: &Digest) -> Result<Vec<u8>, DocumentError> {
    use docx_rs::{Docx, Paragraph, Run};
    let mut doc = Docx::new();
    for (i, line) in plain_lines(d).into_iter().enumerate() {
        let run = Run::new().add_text(line);
        let run = if i == 0 { run.bold().size(32) } else { run };
        doc = doc.add_paragraph(Paragraph::new().add_run(run));
    }
    let mut out = Cursor::new(Vec::new());
    doc.pack(&mut out)
        .map_err(|e| DocumentError::Docx(Box::new(e)))?;
    Ok(out.into_inner())
}
