"""Reports: the evaluation report (Markdown, HTML, figures) and label trends."""
