package studyhtml

import "html/template"

// pageCSS is the page's only stylesheet: colours as variables for light and dark, and a
// print layout (light, no buttons, figures kept whole).
const pageCSS = `
:root{--bg:#fff;--fg:#1d2330;--muted:#5b6472;--grid:#e3e6eb;--axis:#8a93a1;--card:#f5f7fa;--border:#d8dde5;
--bar:#3b6fb6;--mark:rgba(220,80,60,.16);
--c0:#3b6fb6;--c1:#e07b39;--c2:#3a9a5b;--c3:#b04a9a;--c4:#8c6d2f;--c5:#3aa3b5;--c6:#c9424a;--c9:rgba(220,80,60,.45)}
@media (prefers-color-scheme:dark){:root{--bg:#14171c;--fg:#e4e7ec;--muted:#9aa3b0;--grid:#2a2f38;--axis:#6b7482;--card:#1c2027;--border:#323843;
--bar:#6ea1e8;--mark:rgba(240,110,90,.2);
--c0:#6ea1e8;--c1:#f0a05e;--c2:#62c585;--c3:#d27cc2;--c4:#cfae6a;--c5:#6cc8d8;--c6:#ee7077;--c9:rgba(240,110,90,.5)}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1040px;margin:0 auto;padding:24px 20px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 8px;border-bottom:1px solid var(--border);padding-bottom:4px}
h3{font-size:16px;margin:18px 0 6px}
.sub{color:var(--muted);margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px;margin:14px 0}
.card{background:var(--card);border:1px solid var(--border);border-radius:8px;padding:10px 12px}
.card b{display:block;font-size:20px;font-variant-numeric:tabular-nums}.card span{color:var(--muted);font-size:13px}
figure{margin:12px 0 18px;break-inside:avoid;page-break-inside:avoid}
figcaption{color:var(--muted);font-size:14px;margin-top:2px}
figcaption b{color:var(--fg);font-weight:600}
svg.chart{width:100%;height:auto;display:block;font-family:inherit}
.grid{stroke:var(--grid);stroke-width:1}.axis{stroke:var(--axis);stroke-width:1}
.tick{fill:var(--muted);font-size:11px}.axlabel{fill:var(--muted);font-size:12px}
.legend,.rowlabel,.value{fill:var(--fg);font-size:12px}.value{fill:var(--muted)}
.rowlabel{font-variant-numeric:tabular-nums}
.bar{fill:var(--bar)}.mark{fill:var(--mark)}
.series{fill:none;stroke-width:1.6;stroke-linejoin:round}
.c0.series{stroke:var(--c0)}.c1.series{stroke:var(--c1)}.c2.series{stroke:var(--c2)}.c3.series{stroke:var(--c3)}
.c4.series{stroke:var(--c4)}.c5.series{stroke:var(--c5)}.c6.series{stroke:var(--c6)}
.c0.fillc{fill:var(--c0)}.c1.fillc{fill:var(--c1)}.c2.fillc{fill:var(--c2)}.c3.fillc{fill:var(--c3)}
.c4.fillc{fill:var(--c4)}.c5.fillc{fill:var(--c5)}.c6.fillc{fill:var(--c6)}.c9.fillc{fill:var(--c9)}
.nodata{border:1px dashed var(--border);border-radius:8px;padding:18px;color:var(--muted);text-align:center}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid var(--border);text-align:left;vertical-align:top}
td.n,th.n{text-align:right}
th{font-weight:600;background:var(--card);position:sticky;top:0}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" ▲"}table.sortable th[aria-sort=descending]::after{content:" ▼"}
.pager{display:flex;gap:8px;align-items:center;margin:6px 0;color:var(--muted);font-size:13px}
.pager button{font:inherit;background:var(--card);color:var(--fg);border:1px solid var(--border);border-radius:5px;padding:2px 10px;cursor:pointer}
details{margin:8px 0}summary{cursor:pointer;color:var(--muted)}
.note{color:var(--muted);font-size:13px}
.two{display:grid;grid-template-columns:1fr 1fr;gap:18px}@media (max-width:800px){.two{grid-template-columns:1fr}}
code{font-size:13px}
.status-up{color:var(--c2)}.status-down{color:var(--c6)}
@media print{:root{--bg:#fff;--fg:#000;--muted:#333;--grid:#ddd;--axis:#777;--card:#f3f3f3;--border:#bbb;--bar:#2b5ea6;--mark:rgba(220,80,60,.18);
--c0:#2b5ea6;--c1:#d0621b;--c2:#2a8048;--c3:#9a3587;--c4:#7a5c20;--c5:#22899a;--c6:#b52d35}
body{font-size:11pt}main{max-width:none;padding:0}.pager button{display:none}th{position:static}h2{break-after:avoid}}
`

// sortScript sorts a table by the clicked column (data-v holds the sort key of numeric
// cells) and pages its rows; it is the page's only script.
const sortScript = `(function(){
function key(c,num){var v=c.getAttribute('data-v');if(num)return parseFloat(v!==null?v:c.textContent)||0;return (v!==null?v:c.textContent).toLowerCase();}
var tables=document.querySelectorAll('table.sortable');
for(var ti=0;ti<tables.length;ti++){(function(t){
var tb=t.tBodies[0];if(!tb)return;
var per=parseInt(t.getAttribute('data-page')||'0',10),page=0;
var pager=t.parentNode.querySelector('.pager');
function show(){var rows=tb.rows,n=rows.length,pages=per>0?Math.max(1,Math.ceil(n/per)):1;
if(page>=pages)page=pages-1;if(page<0)page=0;
for(var i=0;i<n;i++){rows[i].hidden=per>0&&(i<page*per||i>=(page+1)*per);}
if(pager){var s=pager.querySelector('span');if(s)s.textContent=per>0?('rows '+(n?page*per+1:0)+'–'+Math.min(n,(page+1)*per)+' of '+n):(n+' rows');}}
if(pager){var b=pager.querySelectorAll('button');
if(b.length==2){b[0].addEventListener('click',function(){page--;show();});b[1].addEventListener('click',function(){page++;show();});}}
var ths=t.tHead?t.tHead.rows[0].cells:[];
for(var i=0;i<ths.length;i++){(function(th,col){th.addEventListener('click',function(){
var num=th.className.indexOf('n')>=0,dir=th.getAttribute('aria-sort')==='descending'?1:-1;
if(!num&&!th.getAttribute('aria-sort'))dir=1;
for(var j=0;j<ths.length;j++)ths[j].removeAttribute('aria-sort');
th.setAttribute('aria-sort',dir>0?'ascending':'descending');
var rows=Array.prototype.slice.call(tb.rows);
rows.sort(function(a,b){var x=key(a.cells[col],num),y=key(b.cells[col],num);return x<y?-dir:x>y?dir:0;});
for(var k=0;k<rows.length;k++)tb.appendChild(rows[k]);page=0;show();});})(ths[i],i);}
show();})(tables[ti]);}
})();`

var (
	styleTag  = template.CSS(pageCSS)
	scriptTag = template.JS(sortScript)
)
