// The pages' only script, inline and optional: everything reads and works without it. It fills in
// the registry host from the address the page is served at (when the build did not know it), adds
// the flags plain-HTTP registries need, and adds copy buttons to the commands.

export const SCRIPT = `(function(){
var host=location.host,plain=location.protocol==='http:';
document.querySelectorAll('[data-host]').forEach(function(e){e.textContent=host;e.classList.remove('host')});
document.querySelectorAll('[data-origin]').forEach(function(e){e.textContent=location.origin;e.classList.remove('host')});
document.querySelectorAll('[data-host-note]').forEach(function(e){e.hidden=true});
if(plain)document.querySelectorAll('[data-plain-http]').forEach(function(e){e.hidden=false});
var filter=document.querySelector('[data-kind-filter]');
if(filter){filter.hidden=false;var show=function(k){document.querySelectorAll('tr[data-kind]').forEach(function(r){r.hidden=!!k&&r.getAttribute('data-kind')!==k})};
var want=new URLSearchParams(location.search).get('kind');
filter.querySelectorAll('input').forEach(function(i){if(want&&i.value===want){i.checked=true;show(want)}i.addEventListener('change',function(){show(i.value);history.replaceState(null,'',i.value?'?kind='+i.value:location.pathname)})})}
var live=document.getElementById('copy-status');
document.querySelectorAll('.cmd').forEach(function(c){
var code=c.querySelector('code');if(!code||!navigator.clipboard)return;
var b=document.createElement('button');b.type='button';b.textContent='Copy';
b.setAttribute('aria-label','Copy: '+(c.getAttribute('data-label')||'command'));
b.addEventListener('click',function(){navigator.clipboard.writeText(code.innerText.trim()).then(function(){b.textContent='Copied';if(live)live.textContent='Copied to the clipboard';setTimeout(function(){b.textContent='Copy'},1500)})});
c.appendChild(b)});
})();`;
