"""The report: one Markdown file and one self-contained HTML page (figures embedded as
base64 PNG), built from the same sections so the two never disagree.

Order: a summary (the answer), a table of contents, then each section with its table and the
figures that belong to it, each captioned with what to look for.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from analysis.lr_report import save_lr_figures
from analysis.pipeline import Analysis
from analysis.plots import save_all
from analysis.report_summary import headline, summary_table
from analysis.report_tables import samples_table, tables
from analysis.table_format import Table

__all__ = ["samples_table", "tables", "write_report"]

# Figure -> (title prefix of the section it sits in, caption: what to see in it).
FIGURES: dict[str, tuple[str, str]] = {
    "residuals": (
        "Approach 3",
        "Approach 3's log residuals against model size N and tokens D, coloured by compute "
        "budget. Inside the grey band (the Huber delta) residuals count quadratically. Look "
        "for a trend with N or D: the surface misses the data where the points drift off zero.",
    ),
    "isoflop": (
        "IsoFLOP minima",
        "Final loss against model size at each compute budget (colour), each budget's fitted "
        "parabola and its minimum (filled: in the frontier fit; hollow: at the edge of the "
        "sampled sizes, left out). The minima move right as C grows; that slope is a.",
    ),
    "optimal_allocation": (
        "Tokens per parameter",
        "Compute-optimal N (left) and D (right) against compute: the lab's fits (band: "
        "Approach 3's 95% bootstrap) against Hoffmann et al. and Besiroglu et al. Parallel "
        "lines share an exponent; an offset is a different constant.",
    ),
    "tokens_per_param": (
        "Tokens per parameter",
        "Tokens per parameter D_opt/N_opt at the compute-optimal allocation; the dotted line "
        "is Chinchilla's 20. A flat curve means a = b = 0.5; a rising one, that data should "
        "grow faster than the model.",
    ),
    "loss_vs_compute": (
        "Loss-vs-compute frontier",
        "Final loss of every run against its compute (colour: model size), the best loss at "
        "each budget (stars) and the fitted frontier L(C). The stars should sit on the solid "
        "curve; its flattening is the irreducible loss E.",
    ),
    "lr_tuning": (
        "Hyperparameters",
        "LR-tuning runs: loss against peak learning rate for each size with its fitted "
        "parabola (star: the picked LR), and the fitted LR_opt(N) law through the picks.",
    ),
}


@dataclass
class Section:
    """A heading with its table and the figures (name, PNG path) shown with it."""

    table: Table
    figures: list[tuple[str, Path]] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.table[0]


def slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def sections(tabs: list[Table], figures: dict[str, list[Path]]) -> list[Section]:
    """Each table as a section, each figure in the first section its prefix names (or last)."""
    out = [Section(t) for t in tabs]
    leftover = Section(("Other figures", [], []))
    for name, paths in figures.items():
        prefix = FIGURES.get(name, ("", ""))[0]
        home = next((s for s in out if prefix and s.title.startswith(prefix)), leftover)
        home.figures.append((name, paths[0]))
    return out + ([leftover] if leftover.figures else [])


def caption(name: str) -> str:
    return FIGURES.get(name, ("", name))[1]


def _md_cell(text: str) -> str:
    """A table cell as Markdown renders it literally: HTML escaped (renderers pass raw HTML
    through), pipes escaped, line breaks as <br>."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", "<br>")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows] + [""]


def title_of(an: Analysis) -> str:
    return f"Scaling-law report: {an.dataset.source}"


def to_markdown(an: Analysis, summary: Table, body: list[Section], out_dir: Path) -> str:
    lines = [f"# {title_of(an)}", "", headline(an), "", f"## {summary[0]}", ""]
    lines += _md_table(summary[1], summary[2])
    lines += ["## Contents", ""] + [f"- [{s.title}](#{slug(s.title)})" for s in body] + [""]
    for s in body:
        lines += [f"## {s.title}", "", *_md_table(s.table[1], s.table[2])]
        for name, path in s.figures:
            rel = path.relative_to(out_dir).as_posix()
            lines += [f"![{name}]({rel})", "", f"*Figure: {caption(name)}*", ""]
    return "\n".join(lines)


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left;white-space:pre-wrap}"
    "img{max-width:100%}figure{margin:1em 0}figcaption{color:#333;font-size:0.95em}"
    ".lead{font-size:1.1em}nav li{margin:2px 0}"
)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def to_html(an: Analysis, summary: Table, body: list[Section]) -> str:
    title = html.escape(title_of(an))
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>",
        f"<style>{STYLE}</style></head><body><h1>{title}</h1>",
        f"<p class='lead'>{html.escape(headline(an))}</p>",
        f"<h2 id='summary'>{summary[0]}</h2>" + _html_table(summary[1], summary[2]),
        "<nav><h2>Contents</h2><ul>"
        + "".join(f"<li><a href='#{slug(s.title)}'>{html.escape(s.title)}</a></li>" for s in body)
        + "</ul></nav>",
    ]
    for s in body:
        parts.append(f"<section><h2 id='{slug(s.title)}'>{html.escape(s.title)}</h2>")
        parts.append(_html_table(s.table[1], s.table[2]))
        for name, path in s.figures:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(
                f"<figure><img alt='{name}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(caption(name))}</figcaption></figure>"
            )
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    an: Analysis,
    out_dir: Path,
    holdout: dict | None = None,
    markdown_only: bool = False,
    holdout_reason: str | None = None,
) -> dict[str, Path]:
    """report.md, report.html (self-contained) and figures/*.png|svg under out_dir.

    `markdown_only`: report.md and PNGs alone, small enough to commit under a repo's docs/.
    `holdout_reason`: why there is no held-out check, for the summary.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    formats = ("png",) if markdown_only else ("png", "svg")
    figures = save_all(an, out_dir / "figures", formats)
    figures.update(save_lr_figures(an.dataset.source, out_dir / "figures", formats))
    summary = summary_table(an, holdout, holdout_reason)
    body = sections(tables(an, holdout, sensitivity=True), figures)
    md = out_dir / "report.md"
    md.write_text(to_markdown(an, summary, body, out_dir))
    paths = {"markdown": md, "figures": out_dir / "figures"}
    if not markdown_only:
        paths["html"] = out_dir / "report.html"
        paths["html"].write_text(to_html(an, summary, body))
    return paths
