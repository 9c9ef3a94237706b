//! wgpu finds an adapter headlessly on Vulkan and on GL. CI installs Mesa's software drivers
//! (lavapipe, llvmpipe), so "no adapter" is a failure here, never a skip.

use streamer::render::gpu::{Api, adapters, pick};

#[test]
fn an_adapter_is_found_on_vulkan_and_on_gl() {
    for api in [Api::Vulkan, Api::Gl] {
        let (_, picked) = pick(api).unwrap_or_else(|e| panic!("{api:?}: {e}"));
        assert!(!picked.name.is_empty(), "{api:?}: {picked}");
        let listed = adapters(api);
        assert!(
            listed.iter().any(|a| a.name == picked.name),
            "{api:?}: picked {picked}, listed {listed:?}"
        );
        let backend = match api {
            Api::Vulkan => "vulkan",
            _ => "gl",
        };
        assert_eq!(picked.backend, backend, "{api:?}: {picked}");
    }
}
