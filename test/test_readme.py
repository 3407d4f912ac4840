"""The README's reference sections match the code."""

from pathlib import Path

from segformer_ros.parameters import markdown_table

README = Path(__file__).resolve().parents[1] / 'README.md'


def test_parameter_table_in_sync() -> None:
    text = README.read_text()
    begin, end = '<!-- parameters:begin -->\n', '<!-- parameters:end -->'
    table = text[text.index(begin) + len(begin):text.index(end)]
    assert table == markdown_table(), 'regenerate with segformer_ros.parameters.markdown_table()'


def test_quickstart_commands_present() -> None:
    text = README.read_text()
    assert 'make demo' in text and 'make test' in text
