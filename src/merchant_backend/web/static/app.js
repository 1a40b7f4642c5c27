// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  function say(button, text) {
    var out = button.parentElement.querySelector(".copied");
    if (out) {
      out.textContent = text;
      window.setTimeout(function () { out.textContent = ""; }, 4000);
    }
  }

  function copyText(text, button) {
    var done = function () { say(button, "Copied"); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {
        say(button, "Copy did not work: select the text and copy it yourself");
      });
      return;
    }
    // Older browsers and plain-http origins: select a temporary field and copy that.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    if (ok) { done(); } else { say(button, "Select the text and copy it yourself"); }
  }

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var target = document.getElementById(button.getAttribute("data-copy"));
      if (target) { copyText(target.value || target.textContent, button); }
    });
  });

  document.querySelectorAll("button[data-copy-codes]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var list = document.getElementById(button.getAttribute("data-copy-codes"));
      if (!list) { return; }
      var names = Array.prototype.map.call(list.querySelectorAll("code"), function (c) {
        return c.textContent.trim();
      });
      copyText(names.join("\n"), button);
    });
  });

  // A slow Stripe call: show that something happens and keep the form from being sent twice.
  document.querySelectorAll("button[data-busy]").forEach(function (button) {
    var form = button.form;
    if (!form) { return; }
    form.addEventListener("submit", function () {
      window.setTimeout(function () {
        button.disabled = true;
        button.textContent = button.getAttribute("data-busy");
      }, 0);
    });
  });

  // A form that makes a secret shown once (it carries a form_nonce): sent once. The server adds
  // nothing for a second send of it, but a second click while the first post's redirect is on
  // its way cancels that page after the server has shown it the secret: the person would land
  // on "shown once" without ever seeing the secret.
  document.querySelectorAll("form input[name=form_nonce]").forEach(function (input) {
    var form = input.form;
    if (!form) { return; }
    var buttons = form.querySelectorAll("button[type=submit]");
    var enable = function (on) {
      Array.prototype.forEach.call(buttons, function (button) { button.disabled = !on; });
    };
    form.addEventListener("submit", function () {
      window.setTimeout(function () { enable(false); }, 0);
    });
    // Back to a page the browser kept (back/forward cache): its buttons work again.
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) { enable(true); }
    });
  });

  // After a rejected save, take keyboard and screen-reader users to the list of problems.
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
})();

// Times on the pages follow the browser's time zone: tell the server which one it is (read on
// the next page; a zone chosen on the preferences page wins). Not a secret, so not HttpOnly.
(function () {
  "use strict";
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone || !/^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone)) { return; }
  if (document.cookie.split("; ").indexOf("mb_tz=" + zone) !== -1) { return; }
  document.cookie = "mb_tz=" + zone + "; path=/; max-age=31536000; samesite=strict" +
    (window.location.protocol === "https:" ? "; secure" : "");
})();
