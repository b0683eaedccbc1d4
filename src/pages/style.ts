// The pages' only stylesheet, inline (no request to any other origin, nothing to cache-bust):
// system fonts, light and dark schemes from the reader's setting, readable at phone width.

export const STYLE = `
.rsh{--bg:#fff;--fg:#1f2328;--muted:#57606a;--line:#d0d7de;--code:#f6f8fa;--link:#0550ae;--accent:#0969da;--bar:#0969da;--bar2:#8250df;
color-scheme:light dark;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);margin:0}
@media (prefers-color-scheme:dark){.rsh{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--code:#161b22;--link:#58a6ff;--accent:#4493f8;--bar:#4493f8;--bar2:#ab7df8}}
.rsh *{box-sizing:border-box}
.rsh a{color:var(--link)}
.rsh a:focus-visible,.rsh button:focus-visible,.rsh [tabindex]:focus-visible{outline:2px solid var(--accent);outline-offset:2px}
.rsh .skip{position:absolute;left:-999px}.rsh .skip:focus{left:1rem;top:1rem;background:var(--bg);padding:.25rem .5rem}
.rsh header,.rsh main,.rsh footer{max-width:64rem;margin:0 auto;padding:0 1rem}
.rsh header{padding-top:1rem;border-bottom:1px solid var(--line)}
.rsh header p{margin:.25rem 0 .75rem;color:var(--muted)}
.rsh nav ol{list-style:none;padding:0;margin:0;display:flex;flex-wrap:wrap;gap:.25rem}
.rsh nav li+li::before{content:"/";color:var(--muted);margin-right:.25rem}
.rsh h1{font-size:1.6rem;margin:.5rem 0;overflow-wrap:anywhere}
.rsh h2{font-size:1.25rem;margin:2rem 0 .5rem}
.rsh h3{font-size:1.05rem;margin:1.5rem 0 .5rem}
.rsh footer{color:var(--muted);font-size:.875rem;padding-top:2rem;padding-bottom:2rem}
.rsh code,.rsh .mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.875em}
.rsh .muted{color:var(--muted)}
.rsh .scroll{overflow-x:auto}
.rsh table{border-collapse:collapse;width:100%;font-size:.9375rem}
.rsh th,.rsh td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
.rsh th{font-weight:600;white-space:nowrap}
.rsh td.num,.rsh th.num{text-align:right;white-space:nowrap}
.rsh td.date{white-space:nowrap}
.rsh .cmds{display:grid;gap:.5rem;margin:.5rem 0}
.rsh .cmd{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem;background:var(--code);border:1px solid var(--line);border-radius:6px;padding:.5rem .75rem}
.rsh .cmd .label{min-width:6.5rem;color:var(--muted);font-size:.875rem}
.rsh .cmd code{flex:1 1 20rem;user-select:all;-webkit-user-select:all;overflow-wrap:anywhere}
.rsh .cmd button{font:inherit;font-size:.875rem;padding:.15rem .6rem;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg);cursor:pointer}
.rsh .host{font-style:italic}
.rsh details{margin:.75rem 0}.rsh summary{cursor:pointer;color:var(--link)}
.rsh dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:.5rem 0}
.rsh dt{color:var(--muted)}.rsh dd{margin:0;overflow-wrap:anywhere}
.rsh .chart{max-width:100%;height:auto}
.rsh .bar{fill:var(--bar)}.rsh .bar.alt{fill:var(--bar2)}
.rsh .pill{display:inline-block;border:1px solid var(--line);border-radius:999px;padding:0 .5rem;margin:0 .25rem .25rem 0;font-size:.8125rem;white-space:nowrap}
.rsh .filter{border:1px solid var(--line);border-radius:6px;margin:.75rem 0;padding:.25rem .75rem .5rem;display:flex;flex-wrap:wrap;gap:.25rem 1rem}
.rsh .filter legend{color:var(--muted);padding:0 .25rem}
.rsh pre{background:var(--code);border:1px solid var(--line);border-radius:6px;padding:.75rem;overflow:auto;max-height:40rem}
.rsh pre code{font-size:.8125rem}
.rsh .readme{border:1px solid var(--line);border-radius:6px;padding:0 1rem;overflow-wrap:anywhere}
.rsh .readme table{width:auto}
@media (max-width:40rem){.rsh .hide-narrow{display:none}.rsh th,.rsh td{padding:.35rem .4rem}}
`;
