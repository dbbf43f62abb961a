"use strict";
// The API's documentation page: Swagger UI over the served OpenAPI document.
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({ url: "/schema/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
