"""The report's HTML: one Jinja2 template, inline CSS, no scripts, fonts or anything fetched from a network."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment

TEMPLATE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cxrbench report: {{ suite_name }} / {{ run_id }}</title>
<style>
:root { --fg: #1d2330; --muted: #5b6474; --line: #d9dee7; --bg: #f6f7fa; --card: #fff; --accent: #2458a6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); background: var(--bg); }
main { max-width: 1240px; margin: 0 auto; padding: 20px 24px 60px; }
h1 { font-size: 24px; margin: 4px 0 2px; }
h2 { font-size: 19px; margin: 0 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 6px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
small, .muted { color: var(--muted); }
a { color: var(--accent); text-decoration: none; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px;
          margin: 18px 0; }
nav { font-size: 13px; margin: 8px 0 4px; line-height: 1.9; }
nav a { margin-right: 12px; white-space: nowrap; }
.notices { background: #fff7e0; border: 1px solid #f0d48a; border-radius: 8px; padding: 10px 14px; margin: 12px 0; }
.notices.synthetic { background: #fdecea; border-color: #f1a9a0; }
.note { color: #7a4b00; background: #fff7e0; border-left: 3px solid #f0b429; padding: 6px 10px; margin: 6px 0; }
.ok { color: #1a7f37; } .bad { color: #b42318; }
table.table { border-collapse: collapse; font-size: 13px; margin: 6px 0 10px; font-variant-numeric: tabular-nums; }
table.table th, table.table td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right;
                                 white-space: nowrap; }
table.table th { background: #eef1f6; font-weight: 600; }
table.table th:first-child, table.table td:first-child { text-align: left; }
table.left2 th:nth-child(2), table.left2 td:nth-child(2) { text-align: left; }
table.table tbody tr:nth-child(even) { background: #fafbfd; }
.scroll { overflow-x: auto; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 14px; align-items: start; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; background: #fff; }
figcaption { font-size: 12px; color: var(--muted); margin-top: 3px; }
.facts { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 4px 0 8px; font-size: 13px; }
.facts span b { font-weight: 600; }
pre { background: #f3f5f9; border: 1px solid var(--line); border-radius: 6px; padding: 10px; font-size: 12px;
      overflow: auto; max-height: 520px; }
code { font-size: 12px; }
details { margin-top: 10px; }
summary { cursor: pointer; color: var(--accent); }
ul.plain { padding-left: 18px; margin: 4px 0; }
</style>
</head>
<body>
<main>
{% macro fig(f, wide=false) -%}
<figure{% if wide %} class="wide"{% endif %}>
<img src="{{ f.uri }}" alt="{{ f.title }}">
<figcaption>{{ f.title }} &middot; {{ f.file }}</figcaption>
</figure>
{%- endmacro %}
{% macro notes(part) -%}
{% if part and part.note %}<p class="note">{{ part.note }}</p>{% endif %}
{%- endmacro %}
<header>
<h1>cxrbench report: {{ suite_name }}</h1>
<div class="muted">run <code>{{ run_id }}</code> &middot; status {{ header.status }} &middot;
created {{ header.created_at }} &middot; dataset {{ header.dataset.name if header.dataset else "?" }}
&middot; ranked by {{ primary }}</div>
<div id="notices" class="notices{% if board.synthetic %} synthetic{% endif %}">{{ board.notices }}</div>
<nav>
<a href="#leaderboard">leaderboard</a>
{% if board.comparison %}<a href="#paper-comparison">vs the paper</a>{% endif %}
{% for m in models %}<a href="#model-{{ m.slug }}">{{ m.label }}</a>{% endfor %}
<a href="#tradeoff">cost trade-off</a>
{% if probes %}<a href="#probes">shortcut probes</a>{% endif %}
<a href="#environment">environment</a>
<a href="#suite">suite</a>
</nav>
</header>

<section id="leaderboard">
<h2>Leaderboard</h2>
<p class="muted">{{ board.title }}</p>
<div class="scroll">{{ board.table | safe }}</div>
<p class="muted">Mean &plusmn; std over folds and seeds; {{ board.stats }}; params and MACs at the suite's input
size (MACs = multiply-accumulates, FLOPs = 2 &times; MACs).</p>
{% if board.failed %}
<h3>Failed jobs</h3>
<ul class="plain">{% for f in board.failed %}<li class="bad"><code>{{ f.job }}</code>: {{ f.error }}</li>{% endfor %}</ul>
{% endif %}
{% if board.reproduce %}
<details><summary>reproduce a row</summary>
<ul class="plain">{% for model, cmd in board.reproduce %}<li>{{ model }}: <code>{{ cmd }}</code></li>{% endfor %}</ul>
</details>
{% endif %}
</section>

{% if board.comparison %}
<section id="paper-comparison">
<h2>Compared with the paper</h2>
<p class="muted">{{ board.reference.source }}{% if board.synthetic %} &middot; <b>synthetic data: not comparable
with the paper's figures</b>{% endif %}{% if board.reference_mismatch %} &middot; <b>not comparable
(n/c): {{ board.reference_mismatch }}</b>{% endif %}</p>
<div class="scroll">{{ board.comparison | safe }}</div>
{% if board.reference.note %}<p class="muted">note: {{ board.reference.note }}</p>{% endif %}
</section>
{% endif %}

{% for m in models %}
<section id="model-{{ m.slug }}" class="model">
<h2>{{ m.label }}{% if m.name and m.name != m.label %} <small>({{ m.name }})</small>{% endif %}</h2>
{% if m.job %}
<div class="facts">
<span>job <b>{{ m.job }}</b>{% if m.n_jobs > 1 %} (first of {{ m.n_jobs }}){% endif %}</span>
{% if m.params %}<span>params <b>{{ "{:,}".format(m.params) }}</b></span>{% endif %}
{% if m.macs %}<span>MACs <b>{{ "{:,.1f}".format(m.macs / 1e6) }}M</b></span>{% endif %}
<span>best epoch <b>{{ m.best_epoch }}</b> of {{ m.epochs_run }}</span>
{% if m.plugin %}<span>plugin <b>{{ m.plugin }}</b></span>{% endif %}
</div>
<div class="facts">
{% for name, value, ci in m.summary %}<span>{{ name }} <b>{{ value }}</b>{% if ci %} <small>[{{ "%.4f" % ci[0] }}, {{ "%.4f" % ci[1] }}]</small>{% endif %}</span>{% endfor %}
</div>
{% if m.pred_error %}<p class="note">{{ m.pred_error }}</p>{% endif %}

<div id="curves-{{ m.slug }}">
<h3>Training curves</h3>
{% if m.curves.figure %}{{ fig(m.curves.figure, wide=true) }}{% endif %}
{{ notes(m.curves) }}
</div>

<div class="grid">
<div id="roc-{{ m.slug }}">
<h3>ROC</h3>
{% if m.roc %}{% if m.roc.figure %}{{ fig(m.roc.figure) }}{% endif %}
{% if m.roc.aucs %}<table class="table roc-auc"><thead><tr><th>class</th><th>AUC</th></tr></thead><tbody>
{% for name, auc in m.roc.aucs %}<tr><td>{{ name }}</td><td class="auc">{{ auc }}</td></tr>{% endfor %}
</tbody></table>{% endif %}
{{ notes(m.roc) }}{% else %}<p class="note">no predictions to draw ROC curves from</p>{% endif %}
</div>

<div id="confusion-{{ m.slug }}">
<h3>Confusion matrix</h3>
{% if m.confusion.figure %}{{ fig(m.confusion.figure) }}
<div class="scroll"><table class="table confusion"><thead><tr>{% for h in m.confusion.header %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in m.confusion.rows %}<tr><th scope="row">{{ row[0] }}</th>{% for v in row[1:] %}<td class="cm">{{ v }}</td>{% endfor %}</tr>{% endfor %}</tbody></table></div>
{% endif %}
{{ notes(m.confusion) }}
</div>

<div id="report-{{ m.slug }}">
<h3>Classification report (test)</h3>
{% if m.report.table %}<div class="scroll">{{ m.report.table | safe }}</div>
{% if m.report.accuracy %}<p>accuracy <b>{{ m.report.accuracy }}</b></p>{% endif %}{% endif %}
{{ notes(m.report) }}
</div>

{% if m.reliability %}
<div id="reliability-{{ m.slug }}">
<h3>Reliability diagram</h3>
{{ fig(m.reliability.figure) }}
</div>
{% endif %}
</div>

<div id="misclassified-{{ m.slug }}">
<h3>Most confidently misclassified test images</h3>
{% if m.misclassified %}
{% if m.misclassified.figure %}{{ fig(m.misclassified.figure, wide=true) }}{% endif %}
{{ notes(m.misclassified) }}
{% if m.misclassified["items"] %}
<details{% if not m.misclassified.figure %} open{% endif %}><summary>list ({{ m.misclassified["items"] | length }})</summary>
<table class="table errors"><thead><tr><th>sample</th><th>true</th><th>predicted</th><th>confidence</th></tr></thead><tbody>
{% for e in m.misclassified["items"] %}<tr><td class="sample">{{ e.sample_id }}</td><td>{{ e.true }}</td><td>{{ e.pred }}</td><td>{{ e.confidence }}</td></tr>{% endfor %}
</tbody></table></details>
{% endif %}
{% else %}<p class="note">no predictions file</p>{% endif %}
</div>

<div id="gradcam-{{ m.slug }}">
<h3>Grad-CAM</h3>
{% if m.gradcam and m.gradcam.figure %}
<p class="muted">Target layer <code>{{ m.gradcam.layer }}</code> ({{ m.gradcam.feature }} feature map), maps for {{ m.gradcam.target }}; the test images
of each class the model scores highest on it. Re-computed probabilities vs the predictions file: max |&Delta;p| =
{{ m.gradcam.drift }} <span class="{{ 'ok' if m.gradcam.reproduced else 'bad' }}">({{ "checkpoint reproduces the run" if m.gradcam.reproduced else "differs: AMP on CUDA, or the data changed" }})</span>.
{% if m.gradcam.empty %}[empty map]: no positive evidence for that class at the target layer (the weighted
activations are negative everywhere), common for an undertrained model.{% endif %}</p>
{{ notes(m.gradcam) }}
{{ fig(m.gradcam.figure, wide=true) }}
{% elif m.gradcam %}{{ notes(m.gradcam) }}{% else %}<p class="note">no predictions file</p>{% endif %}
</div>
{% else %}
<p class="note">every job of this model failed</p>
{% endif %}
{% if m.failed %}<ul class="plain">{% for r in m.failed %}<li class="bad"><code>{{ r.job_id }}</code>: {{ r.error }}</li>{% endfor %}</ul>{% endif %}
<details id="jobs-{{ m.slug }}"><summary>all jobs of {{ m.label }} ({{ m.n_jobs }})</summary>
<div class="scroll">{{ m.jobs | safe }}</div></details>
</section>
{% endfor %}

{% if probes %}
<section id="probes">
<h2>Shortcut probes</h2>
{% if probes.exists %}
<p class="muted">{{ probes.rule }} &middot; written {{ probes.created_at }} by <code>cxrbench probe</code></p>
<div class="scroll"><table class="table probes"><thead><tr><th>model</th><th>job</th><th>{{ probes.primary }}</th>
<th>lungs masked</th><th>centre only</th><th>majority</th><th>margin kept</th><th>verdict</th></tr></thead><tbody>
{% for r in probes.rows %}{% if r.skipped %}<tr><td>{{ r.model }}</td><td colspan="7" class="muted">skipped: {{ r.skipped }}</td></tr>
{% else %}<tr><td>{{ r.model }}</td><td>{{ r.job }}</td><td>{{ r.original }}</td><td>{{ r.lungs_masked }}</td>
<td>{{ r.center_only }}</td><td>{{ r.majority }}</td><td>{{ r.kept }}</td>
<td class="{{ 'bad' if r.flagged else 'ok' }}">{{ 'FLAGGED' if r.flagged else r.verdict.split(':')[0] }}</td></tr>
{% endif %}{% endfor %}</tbody></table></div>
{% for r in probes.rows %}{% if r.flagged %}<p class="note">{{ r.model }}: {{ r.verdict }}</p>{% endif %}{% endfor %}
<h3>Source probe</h3>
{% if probes.source.status == "ok" %}
<p class="{{ 'note' if probes.source.warning else 'ok' }}">{{ probes.source.message }} (source: {{ probes.source.origin }})</p>
{% else %}<p class="muted">skipped: {{ probes.source.message }}</p>{% endif %}
{% else %}<p class="note">{{ probes.hint }}</p>{% endif %}
</section>
{% endif %}

<section id="tradeoff">
<h2>Accuracy vs cost</h2>
{% if tradeoff.latency %}{{ fig(tradeoff.latency, wide=true) }}
<details><summary>latency records</summary><div class="scroll">{{ tradeoff.latency_table | safe }}</div></details>
{% endif %}
{% if tradeoff.latency_note %}<p class="note">{{ tradeoff.latency_note }}</p>{% endif %}
{{ fig(tradeoff.macs, wide=true) }}
</section>

<section id="environment">
<h2>Environment</h2>
<div class="facts">{% for k, v in environment_facts %}<span>{{ k }} <b>{{ v }}</b></span>{% endfor %}</div>
<pre>{{ environment }}</pre>
</section>

<section id="suite">
<h2>Resolved suite</h2>
{% if suite_error %}<p class="note">{{ suite_error }}</p>{% endif %}
<pre>{{ suite_text }}</pre>
</section>
<p class="muted">Written by <code>cxrbench report</code>. {{ board.notices }}</p>
</main>
</body>
</html>
"""

_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)


def render_html(context: dict[str, Any]) -> str:
    """The report page for ``context`` (built by :func:`cxrbench.report.build.build_report`)."""
    return _ENV.from_string(TEMPLATE).render(**context)
