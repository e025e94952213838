// fedgate console: the only script. "Copy API key" copies the key shown in
// the read-only "New API key" field beside it and says so in words.
document.addEventListener("click", function (ev) {
  var button = ev.target.closest("button[data-copy]");
  if (!button) return;
  var field = document.getElementById(button.getAttribute("data-copy"));
  var status = document.getElementById(button.getAttribute("data-copy") + "-status");
  if (!field) return;
  function done(ok) {
    if (status) status.textContent = ok ? "Copied to the clipboard." : "Could not copy: select the key and copy it.";
  }
  field.focus();
  field.select();
  var ok = false;
  try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
  if (ok) { done(true); return; }
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () { done(false); });
  } else {
    done(false);
  }
});
