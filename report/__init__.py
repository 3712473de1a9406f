"""The pages people read in a browser: prepare/review.html (step 3's plan, before anything is written to
Dataverse) and update/report.html (step 4's outcomes). Each is one self-contained file: inline CSS and
JavaScript, the data as JSON inside the page, no network.

Rendering is pure (data in, HTML text out: `review_page.render_review_page`, `outcome_page.render_report_page`);
one `write_*` function per page writes it through the run folder's atomic writer. CRM data is user input:
templates escape by default (Jinja2, autoescape on), the data travels as HTML-safe JSON, and the pages'
script builds the sections with `textContent`, never with HTML made from data (DESIGN.md habit 9).
"""
