// Live console of a host: appends each server-sent line as a text node (kernel text
// is never parsed as HTML) and keeps the last 2000 lines.
(function () {
  var pre = document.getElementById("tail");
  if (!pre || !window.EventSource) return;
  var es = new EventSource("/api/hosts/" + encodeURIComponent(pre.dataset.host) + "/tail");
  es.onmessage = function (e) {
    pre.appendChild(document.createTextNode(e.data + "\n"));
    while (pre.childNodes.length > 2000) pre.removeChild(pre.firstChild);
    window.scrollTo(0, document.body.scrollHeight);
  };
})();
