//! Finding a request's operation: one table of route templates, built at
//! start from the list of operations ([`super::ops::ROUTES`]), matched by
//! `matchit` (a radix tree: the cost grows with the path's length, not with
//! the number of routes).

use hyper::Method;

use super::error::ApiError;
use super::ops::{Op, ROUTES};

/// Every route of the server.
pub struct Router {
    paths: matchit::Router<Vec<Route>>,
}

/// One method of a route template, and its operation.
type Route = (Method, Op, &'static str);

/// A request's route.
pub struct Found<'r, 'p> {
    pub op: Op,
    /// The route's template, the label requests are counted under.
    pub template: &'static str,
    pub params: matchit::Params<'r, 'p>,
}

impl Router {
    pub fn new() -> Self {
        let mut templates: Vec<(&'static str, Vec<Route>)> = Vec::new();
        for (op, method, paths) in ROUTES {
            for &path in *paths {
                let entry = (method.clone(), *op, path);
                match templates.iter_mut().find(|(known, _)| *known == path) {
                    Some((_, methods)) => methods.push(entry),
                    None => templates.push((path, vec![entry])),
                }
            }
        }
        let mut paths = matchit::Router::new();
        for (path, methods) in templates {
            paths
                .insert(path, methods)
                .unwrap_or_else(|e| panic!("route {path}: {e}"));
        }
        Router { paths }
    }

    /// The operation of `method` and `path`; 404 for a path that matches no
    /// route, 405 for a route that does not accept the method. `HEAD` is
    /// answered as `GET` (hyper sends the head only).
    pub fn find<'r, 'p>(
        &'r self,
        method: &Method,
        path: &'p str,
    ) -> Result<Found<'r, 'p>, (Option<&'static str>, ApiError)> {
        let Ok(matched) = self.paths.at(path) else {
            return Err((None, no_route(method, path)));
        };
        let wanted = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        match matched.value.iter().find(|(m, _, _)| m == wanted) {
            Some(&(_, op, template)) => Ok(Found {
                op,
                template,
                params: matched.params,
            }),
            None => Err((
                Some(matched.value[0].2),
                ApiError::MethodNotAllowed {
                    method: method.to_string(),
                    path: path.to_owned(),
                    allowed: allowed(matched.value),
                },
            )),
        }
    }
}

/// The `Allow` header of a route: its methods, and `HEAD` with `GET`.
fn allowed(routes: &[Route]) -> String {
    let mut methods: Vec<&str> = routes
        .iter()
        .map(|(method, _, _)| method.as_str())
        .collect();
    if methods.contains(&"GET") {
        methods.push("HEAD");
    }
    methods.join(", ")
}

/// A path that matches no route. `/get/` and `/delete/` with nothing after
/// the slash are answered as what they are, an empty key.
fn no_route(method: &Method, path: &str) -> ApiError {
    if matches!(path, "/get/" | "/delete/") {
        return ApiError::invalid(
            "path: the key must not be empty; use /get/{key} with a non-empty key",
        );
    }
    ApiError::NoRoute {
        method: method.to_string(),
        path: path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_found_under_its_template() {
        let router = Router::new();
        let found = router.find(&Method::GET, "/get/a/b:c").ok().unwrap();
        assert_eq!((found.op, found.template), (Op::Get, "/get/{*key}"));
        assert_eq!(found.params.get("key"), Some("a/b:c"));
        let found = router.find(&Method::HEAD, "/stats").ok().unwrap();
        assert_eq!(found.op, Op::Stats);
        let found = router
            .find(&Method::DELETE, "/namespaces/app1")
            .ok()
            .unwrap();
        assert_eq!(found.op, Op::Clear);
        let found = router.find(&Method::PUT, "/quota").ok().unwrap();
        assert_eq!(found.op, Op::SetQuota);
        let Err((template, error)) = router.find(&Method::PUT, "/set") else {
            panic!("PUT /set was routed");
        };
        assert_eq!(template, Some("/set"));
        assert!(
            matches!(error, ApiError::MethodNotAllowed { ref allowed, .. } if allowed == "POST")
        );
        let Err((_, error)) = router.find(&Method::POST, "/quota") else {
            panic!("POST /quota was routed");
        };
        assert!(
            matches!(error, ApiError::MethodNotAllowed { ref allowed, .. } if allowed == "GET, PUT, HEAD")
        );
        let Err((None, error)) = router.find(&Method::GET, "/nope") else {
            panic!("/nope was routed");
        };
        assert!(matches!(error, ApiError::NoRoute { .. }));
        let Err((_, error)) = router.find(&Method::GET, "/get/") else {
            panic!("an empty key was routed");
        };
        assert!(matches!(error, ApiError::Invalid(_)));
    }
}
