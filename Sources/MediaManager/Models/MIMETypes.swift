/// MIME types by file name extension, for naming what a file holds when only its name is known.
public enum MIMETypes {
    /// The MIME type for `fileName`'s extension, or `application/octet-stream`.
    public static func guess(fileName: String) -> String {
        guard let dot = fileName.lastIndex(of: "."), dot != fileName.startIndex else { return octetStream }
        let ext = fileName[fileName.index(after: dot)...].lowercased()
        return byExtension[ext] ?? octetStream
    }

    public static let octetStream = "application/octet-stream"

    static let byExtension: [String: String] = [
        // images
        "jpg": "image/jpeg", "jpeg": "image/jpeg", "jpe": "image/jpeg", "png": "image/png", "gif": "image/gif",
        "webp": "image/webp", "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff", "heic": "image/heic",
        "heif": "image/heif", "avif": "image/avif", "ico": "image/x-icon", "svg": "image/svg+xml",
        "psd": "image/vnd.adobe.photoshop", "raw": "image/x-raw", "cr2": "image/x-canon-cr2", "nef": "image/x-nikon-nef",
        "dng": "image/x-adobe-dng",
        // video
        "mp4": "video/mp4", "m4v": "video/x-m4v", "mov": "video/quicktime", "avi": "video/x-msvideo",
        "mkv": "video/x-matroska", "webm": "video/webm", "mpg": "video/mpeg", "mpeg": "video/mpeg",
        "wmv": "video/x-ms-wmv", "flv": "video/x-flv", "3gp": "video/3gpp", "mts": "video/mp2t", "m2ts": "video/mp2t",
        "ts": "video/mp2t", "ogv": "video/ogg",
        // audio
        "mp3": "audio/mpeg", "wav": "audio/wav", "aac": "audio/aac", "m4a": "audio/mp4", "flac": "audio/flac",
        "ogg": "audio/ogg", "oga": "audio/ogg", "opus": "audio/opus", "wma": "audio/x-ms-wma", "aif": "audio/aiff",
        "aiff": "audio/aiff", "mid": "audio/midi", "midi": "audio/midi",
        // documents
        "pdf": "application/pdf", "txt": "text/plain", "csv": "text/csv", "md": "text/markdown", "html": "text/html",
        "htm": "text/html", "json": "application/json", "xml": "application/xml", "rtf": "application/rtf",
        "doc": "application/msword", "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls": "application/vnd.ms-excel", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt": "application/vnd.ms-powerpoint",
        "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odt": "application/vnd.oasis.opendocument.text", "ods": "application/vnd.oasis.opendocument.spreadsheet",
        "odp": "application/vnd.oasis.opendocument.presentation", "epub": "application/epub+zip",
        // archives
        "zip": "application/zip", "rar": "application/vnd.rar", "7z": "application/x-7z-compressed",
        "gz": "application/gzip", "tgz": "application/gzip", "tar": "application/x-tar", "bz2": "application/x-bzip2",
        "xz": "application/x-xz", "zst": "application/zstd",
        // 3D models
        "glb": "model/gltf-binary", "gltf": "model/gltf+json", "obj": "model/obj", "stl": "model/stl",
        "usdz": "model/vnd.usdz+zip", "fbx": "model/fbx",
        // fonts
        "ttf": "font/ttf", "otf": "font/otf", "woff": "font/woff", "woff2": "font/woff2",
    ]
}
