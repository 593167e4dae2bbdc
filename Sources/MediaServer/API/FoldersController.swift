import Foundation
import Hummingbird
import MediaManager

/// `/site-media/v1/folders…`, `/bulk/folders…` and `/trash-bin/folders`.
struct FoldersController: Sendable {
    let state: ServerState

    func addRoutes(to group: RouterGroup<MediaRequestContext>) {
        group.post("folders") { request, context in
            let body = try await request.decodeJSON(CreateFolderRequest.self, context: context)
            let name = body.displayName.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !name.isEmpty else { throw APIError.invalid("displayName", "displayName must not be empty") }
            try InputLimits.checkName(body.displayName, field: "displayName")
            let parent = body.parentFolderId.flatMap { $0.isEmpty ? nil : $0 } ?? FolderID.mediaRoot
            let record = try await self.state.store.createFolder(displayName: body.displayName, parentId: parent)
            return JSONResponse(FolderResponse(folder: self.state.folder(record)))
        }
        group.get("folders") { request, _ in
            try await self.list(ListQuery(request: request, trash: false, files: false))
        }
        group.get("trash-bin/folders") { request, _ in
            try await self.list(ListQuery(request: request, trash: true, files: false))
        }
        group.get("folders/:folderId") { _, context in
            let id = try context.parameters.require("folderId")
            if let root = Self.rootFolder(id) { return JSONResponse(FolderResponse(folder: root)) }
            guard let record = try await self.state.store.folder(id: id) else { throw APIError.notFound("Folder", id) }
            return JSONResponse(FolderResponse(folder: self.state.folder(record)))
        }
        group.patch("folders/:folderId") { request, context in
            let id = try context.parameters.require("folderId")
            guard Self.rootFolder(id) == nil else {
                throw APIError(.badRequest, code: "INVALID_ARGUMENT", message: "Root folder '\(id)' cannot be changed")
            }
            let body = try await request.decodeJSON(UpdateFolderRequest.self, context: context)
            let mask = body.fieldMask?.fields
            func wanted(_ field: String) -> Bool { mask?.contains(field) ?? true }
            let name = wanted("displayName") ? body.folder.displayName : nil
            if let name {
                guard !name.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                    throw APIError.invalid("folder.displayName", "displayName must not be empty")
                }
                try InputLimits.checkName(name, field: "folder.displayName")
            }
            let record = try await self.state.store.updateFolder(
                id: id,
                displayName: name,
                parentId: wanted("parentFolderId") ? body.folder.parentFolderId.flatMap { $0.isEmpty ? nil : $0 } : nil
            )
            return JSONResponse(FolderResponse(folder: self.state.folder(record)))
        }
        group.post("bulk/folders/delete") { request, context in
            let body = try await request.decodeJSON(BulkDeleteFoldersRequest.self, context: context)
            try InputLimits.checkIds(body.folderIds, field: "folderIds")
            if let root = body.folderIds.first(where: { Self.rootFolder($0) != nil }) {
                throw APIError.invalid("folderIds", "Root folder '\(root)' cannot be deleted")
            }
            let blobs = try await self.state.store.deleteFolders(ids: body.folderIds, permanent: body.permanent ?? false)
            await self.state.blobs.remove(blobs)
            return JSONResponse(EmptyResponse())
        }
        group.post("bulk/trash-bin/folders/restore") { request, context in
            let body = try await request.decodeJSON(BulkRestoreFoldersRequest.self, context: context)
            try InputLimits.checkIds(body.folderIds, field: "folderIds")
            try await self.state.store.restoreFolders(ids: body.folderIds)
            return JSONResponse(EmptyResponse())
        }
    }

    func list(_ query: ListQuery) async throws -> JSONResponse<ListFoldersResponse> {
        let page = try await state.store.listFolders(query)
        return JSONResponse(ListFoldersResponse(folders: page.rows.map(state.folder), nextCursor: PagingMetadata(next: page.nextCursor)))
    }

    /// The synthetic descriptions of the root folders.
    static func rootFolder(_ id: String) -> Folder? {
        let epoch = Date(timeIntervalSince1970: 0)
        switch id {
        case FolderID.mediaRoot: return Folder(id: id, displayName: "Site Files", parentFolderId: "", createdDate: epoch, updatedDate: epoch)
        case FolderID.trashRoot: return Folder(id: id, displayName: "Trash", parentFolderId: "", createdDate: epoch, updatedDate: epoch)
        case FolderID.visitorUploads:
            return Folder(id: id, displayName: "Visitor Uploads", parentFolderId: "", createdDate: epoch, updatedDate: epoch)
        default: return nil
        }
    }
}
