"""geo/posters.py and `skillcircle posters`: PDF pages whose QR codes scan."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from geo._errors import SettingsError
from geo.cli import main
from geo.posters import Poster, PosterLine, render_posters

TOOLS = ("pdfinfo", "pdftoppm", "pdftotext", "zbarimg")
needs_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="needs pdfinfo/pdftoppm/pdftotext (Debian poppler-utils, poppler-data) and zbarimg "
    "(zbar-tools)",
)


def posters(n: int) -> list[Poster]:
    line = PosterLine(
        "镇村培训站点",
        "乌镇镇职工技能培训站点",
        {"步行": 12.0, "驾车": None},
        phone="0573-00000001",
        is_sample=True,
    )
    return [
        Poster(
            f"测试村{i}",
            f"桐乡市 乌镇镇 · 33048310000{i}",
            f"https://skills.example.cn/q/33048310000{i}",
            [line],
            ["样例数据"],
        )
        for i in range(1, n + 1)
    ]


def pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    return int(
        next(line for line in info.stdout.splitlines() if line.startswith("Pages:")).split()[1]
    )


def decode_page(pdf: Path, page: int, tmp: Path) -> str:
    prefix = tmp / f"page{page}"
    subprocess.run(
        ["pdftoppm", "-r", "150", "-png", "-f", str(page), "-l", str(page), str(pdf), str(prefix)],
        check=True,
        capture_output=True,
    )
    png = next(tmp.glob(f"page{page}*.png"))
    out = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@needs_tools
def test_render_and_scan(tmp_path):
    pdf = render_posters(posters(3), tmp_path / "p.pdf")
    assert pages(pdf) == 3
    assert decode_page(pdf, 1, tmp_path) == "https://skills.example.cn/q/330483100001"
    assert decode_page(pdf, 3, tmp_path) == "https://skills.example.cn/q/330483100003"
    text = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "测试村1" in text and "乌镇镇职工技能培训站点" in text and "样例" in text


def test_nothing_to_print(tmp_path):
    with pytest.raises(SettingsError, match="no villages"):
        render_posters([], tmp_path / "p.pdf")
    assert not (tmp_path / "p.pdf").exists()


def test_failed_render_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "p.pdf"
    out.write_bytes(b"old")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("geo.posters._page", boom)
    with pytest.raises(RuntimeError):
        render_posters(posters(1), out)
    assert out.read_bytes() == b"old"


@needs_tools
def test_posters_command_for_a_town(tmp_path, monkeypatch):
    monkeypatch.setenv("SKILLCIRCLE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "wuzhen.pdf"
    args = [
        "posters",
        "--county",
        "桐乡市",
        "--town",
        "乌镇镇",
        "--public-url",
        "https://skills.example.cn/",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    import geopandas as gpd

    from geo.settings import Settings

    villages = gpd.read_file(Settings().villages_path)
    wuzhen = villages[villages["town"] == "乌镇镇"].sort_values("village_code")
    assert pages(out) == len(wuzhen) > 0
    first = wuzhen["village_code"].iloc[0]
    assert decode_page(out, 1, tmp_path) == f"https://skills.example.cn/q/{first}"
    bad = CliRunner().invoke(
        main,
        ["posters", "--county", "桐乡市", "--town", "西塘镇", "--out", str(tmp_path / "x.pdf")],
    )
    assert bad.exit_code == 1 and "西塘镇" in bad.output and not (tmp_path / "x.pdf").exists()
