"""MkDocs hooks: the pages link to the benchmark results where they live in the repository (so the links work
on GitHub too); the site gets those files and the links are pointed at them. (The notebooks come in through
the docs/notebooks link, which mkdocs-jupyter renders.)"""
from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
#: repository folder -> folder of the site
OUTSIDE = {"benchmarks/results": "results"}


def on_files(files: Files, config) -> Files:
    for folder, into in OUTSIDE.items():
        for path in sorted((ROOT / folder).iterdir()):
            if path.is_file() and not path.name.startswith("."):
                files.append(File.generated(config, f"{into}/{path.name}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    for folder, into in OUTSIDE.items():
        markdown = markdown.replace(f"](../{folder}/", f"]({into}/")
    return markdown
