// Starts Swagger UI on /schema (kept out of the page so the Content-Security-Policy needs no inline script).
(function () {
  var container = document.getElementById('swagger-container');
  window.ui = SwaggerUIBundle({
    url: container.dataset.specUrl,
    dom_id: '#swagger-container',
    deepLinking: true,
    validatorUrl: null, // the default badge is fetched from validator.swagger.io
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
