/*
 * dunning-banner.js: shows the billing banners of one customer inside your product.
 * Plain JavaScript, no dependencies. See README.md ("In-app banners") and docs/banner-example.html.
 *
 *   <div id="billing-banner"></div>
 *   <script src="https://billing.example.com/static/js/dunning-banner.js"
 *           data-endpoint="https://billing.example.com/api/v1/banners/embed/"
 *           data-token="TOKEN FROM YOUR BACKEND" data-target="#billing-banner" defer></script>
 *
 * or, from your own code: DunningBanner.render({endpoint, token, target}).
 *
 * The token is short-lived and names one customer; your backend gets it from POST /api/v1/banners/token/
 * with its API key (never put the API key in a page). Server text is always inserted as text, never as
 * HTML, and only http(s) links are followed. A dismissed banner stays hidden in this browser until its
 * message changes.
 */
(function () {
  "use strict";

  var STORAGE_PREFIX = "dunning-banner-dismissed:";
  var STYLE_ID = "dunning-banner-styles";
  var CSS =
    ".dunning-banner{display:flex;align-items:center;gap:12px;padding:10px 16px;margin:0 0 8px;" +
    "font:14px/1.4 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;border-radius:6px;" +
    "border:1px solid;box-sizing:border-box}" +
    ".dunning-banner--info{background:#eef6ff;border-color:#9cc3f5;color:#0b3d7a}" +
    ".dunning-banner--warning{background:#fff8e5;border-color:#e9c46a;color:#5c4000}" +
    ".dunning-banner--critical{background:#fdecec;border-color:#e5a0a0;color:#7a0b0b}" +
    ".dunning-banner__message{margin:0;flex:1}" +
    ".dunning-banner__cta{font-weight:600;color:inherit;text-decoration:underline;white-space:nowrap}" +
    ".dunning-banner__close{background:none;border:0;color:inherit;font-size:20px;line-height:1;" +
    "padding:4px 8px;cursor:pointer;border-radius:4px}" +
    ".dunning-banner__close:focus-visible,.dunning-banner__cta:focus-visible{outline:2px solid currentColor;" +
    "outline-offset:2px}";

  function storage() {
    try {
      var probe = "dunning-banner-probe";
      window.localStorage.setItem(probe, "1");
      window.localStorage.removeItem(probe);
      return window.localStorage;
    } catch (error) {
      return null; // private mode or storage disabled: dismissals last for the page only
    }
  }

  function isDismissed(store, banner) {
    return !!store && store.getItem(STORAGE_PREFIX + banner.id) === String(banner.updated_at);
  }

  function safeLink(url) {
    try {
      var parsed = new URL(url, window.location.href);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (error) {
      return null;
    }
  }

  function injectStyles() {
    if (document.getElementById(STYLE_ID)) return;
    var style = document.createElement("style");
    style.id = STYLE_ID;
    style.textContent = CSS;
    document.head.appendChild(style);
  }

  function resolveTarget(target) {
    if (target && typeof target === "object") return target;
    if (typeof target === "string" && target) return document.querySelector(target);
    var container = document.createElement("div");
    document.body.insertBefore(container, document.body.firstChild);
    return container;
  }

  function buildBanner(banner, onDismiss) {
    var severity = ["info", "warning", "critical"].indexOf(banner.severity) >= 0 ? banner.severity : "warning";
    var element = document.createElement("div");
    element.className = "dunning-banner dunning-banner--" + severity;
    // Critical messages interrupt a screen reader; the others wait for a pause.
    element.setAttribute("role", severity === "critical" ? "alert" : "status");
    element.setAttribute("data-banner-id", String(banner.id));

    var message = document.createElement("p");
    message.className = "dunning-banner__message";
    message.textContent = banner.message;
    element.appendChild(message);

    var href = banner.cta_url ? safeLink(banner.cta_url) : null;
    if (href) {
      var link = document.createElement("a");
      link.className = "dunning-banner__cta";
      link.href = href;
      link.textContent = banner.cta_label || "Update payment method";
      element.appendChild(link);
    }

    var close = document.createElement("button");
    close.type = "button";
    close.className = "dunning-banner__close";
    close.setAttribute("aria-label", "Dismiss this message");
    close.textContent = "\u00d7";
    close.addEventListener("click", function () {
      onDismiss(banner, element);
    });
    element.appendChild(close);
    return element;
  }

  function render(options) {
    options = options || {};
    if (!options.endpoint || !options.token) {
      return Promise.reject(new Error("DunningBanner: endpoint and token are required"));
    }
    var store = storage();
    var separator = options.endpoint.indexOf("?") >= 0 ? "&" : "?";
    var url = options.endpoint + separator + "token=" + encodeURIComponent(options.token);
    return fetch(url, { credentials: "omit", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("DunningBanner: the banner service answered " + response.status);
        return response.json();
      })
      .then(function (data) {
        var banners = (data && data.banners) || [];
        var visible = banners.filter(function (banner) {
          return !isDismissed(store, banner);
        });
        var container = resolveTarget(options.target);
        if (!container) return [];
        container.textContent = "";
        if (!visible.length) return [];
        injectStyles();
        visible.forEach(function (banner) {
          container.appendChild(
            buildBanner(banner, function (dismissed, element) {
              if (store) store.setItem(STORAGE_PREFIX + dismissed.id, String(dismissed.updated_at));
              // Keep keyboard users in place: focus the next banner's button, or the container.
              var next = element.nextElementSibling || element.previousElementSibling;
              element.parentNode.removeChild(element);
              if (next && next.querySelector(".dunning-banner__close")) {
                next.querySelector(".dunning-banner__close").focus();
              } else {
                container.setAttribute("tabindex", "-1");
                container.focus();
              }
              container.dispatchEvent(
                new CustomEvent("dunning-banner:dismiss", { bubbles: true, detail: { id: dismissed.id } })
              );
            })
          );
        });
        return visible;
      });
  }

  window.DunningBanner = { render: render };

  var script = document.currentScript;
  if (script && script.getAttribute("data-token")) {
    var start = function () {
      render({
        endpoint: script.getAttribute("data-endpoint"),
        token: script.getAttribute("data-token"),
        target: script.getAttribute("data-target"),
      }).catch(function (error) {
        if (window.console) window.console.warn(error.message || error);
      });
    };
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", start);
    } else {
      start();
    }
  }
})();
